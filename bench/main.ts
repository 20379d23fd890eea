/**
 * npm run bench [-- --runtime native|containers] [--rounds N] [--seconds S] [--connections C]
 *                  [--parts main,pairs,instructions,growth,rules,memory,profile,helpers,histogram,path,locked,fleet,poller]
 *                  [--pairs N] [--requests N] [--help]
 *
 * main (compare.ts): every variant once per round, interleaved, ratios to plain proxy_pass taken
 * within each round, then the targets. pairs: each pattern's router against its floor in A B B A
 * windows of 1 s, the fast path's contract. growth: cost against flagged IPs, clients, ranges and workers.
 * memory: a worker's RSS over N requests. rules: a large rules document loading under load (time,
 * slowest request, memory). profile: where a worker's time goes, sampled with perf
 * (when linux-perf is installed). helpers: the TypeScriptToLua helpers on the request path, timed.
 * fleet: the store load of 2 routers × 2 workers behind nutcracker, idle and under load. poller: the
 * router under wrk with 0, 1 and 10 status pollers (the status page, `gray status`) asking once a second.
 * Prints tables, writes the same as JSON under bench/results/, and exits 1 if a target is missed.
 */
import { execSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { FlagStore } from "../harness/flags.ts";
import type { NginxServer } from "../harness/nginx.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { freePort } from "../harness/net.ts";
import { LUA_DIR, LUA_SHIM_DIR, ROOT } from "../harness/paths.ts";
import type { Runtime } from "../harness/runtime.ts";
import { createRuntime } from "../harness/pick-runtime.ts";
import { workersOf } from "../harness/proc.ts";
import { backend } from "../harness/stack.ts";
import { NO_IP_KEYS_SERIES, growth } from "./growth.ts";
import { type Goal, compareVariants, fmt } from "./compare.ts";
import { type Bed, type RoundPlan, installed, pinAside, startNginx, startVariant, table } from "./measure.ts";
import { helperTimes } from "./helpers.ts";
import { histogramCost } from "./histogram.ts";
import { FLOOR_MARGIN_US, floorPairs } from "./pairs.ts";
import { pathCost } from "./path.ts";
import { instructionPairs } from "./instructions.ts";
import { lockedStoreCost } from "./locked.ts";
import { memoryRun } from "./memory.ts";
import { type Profile, profile } from "./profile.ts";
import { fleetStoreLoad } from "./fleet.ts";
import { pollerCost } from "./poller.ts";
import { documentLoads, storeLoad } from "./rules.ts";
import { RULES_LOADED_MS, VARIANTS, type Variant, writeVariantRules } from "./variants.ts";

const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "native" },
    rounds: { type: "string", default: "5" },
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "32" },
    parts: {
      type: "string",
      default: "main,pairs,instructions,growth,rules,memory,profile,helpers,histogram,path,locked,fleet,poller",
    },
    pairs: { type: "string", default: "30" },
    requests: { type: "string", default: "1000000" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(`npm run bench [-- --runtime native|containers] [--rounds N] [--seconds S] [--connections C]
                 [--parts main,pairs,instructions,growth,rules,memory,profile,helpers,histogram,path,locked,fleet,poller]
                 [--pairs N] [--requests N]

parts (default: all of them, in this order):
  main     every variant once per round, interleaved, ratios to plain proxy_pass, then the targets
  pairs    the fast path's contract: each pattern's router against its floor, --pairs N (30) pairs of
           A B B A windows of 1 s; the median difference in worker CPU per request and its 95 % interval
  instructions  the same pairs counted, not timed: instructions per request of each router and its floor,
           one nginx process under valgrind's callgrind (native runtime, valgrind installed)
  growth   cost against flagged IPs (per-IP seed keys), distinct clients, ranges (rules document), workers
  rules    a large rules document loading under load: time, slowest request, memory
  memory   a worker's RSS over --requests requests
  profile  where a worker's time goes, sampled with perf (when linux-perf is installed)
  helpers  the TypeScriptToLua helpers on the request path, timed
  histogram  the log line's counting with and without the latency histogram, timed
  path     route_upstream() and log() themselves, timed per call in nginx's LuaJIT
  locked   a seed-key lookup per request and a cached client, against an open, an authenticated and a TLS store
  fleet    the store's load (memcached cmd_get/s) of 2 routers × 2 workers behind nutcracker, idle and under load
  poller   the router under wrk with 0, 1 and 10 pollers of /gray/status's JSON (the status page, gray status) at
           1/s each, interleaved; and the worker CPU of one status answer`);
  process.exit(0);
}
const LOAD: RoundPlan = {
  rounds: Number(values.rounds),
  seconds: Number(values.seconds),
  connections: Number(values.connections),
};
/** Growth has many points: fewer, shorter rounds each. */
const GROWTH_LOAD: RoundPlan = { ...LOAD, rounds: Math.min(LOAD.rounds, 3), seconds: Math.min(LOAD.seconds, 3) };
const PARTS = new Set(values.parts.split(","));
const MEMORY_REQUESTS = Number(values.requests);

function machine(runtime: Runtime): Record<string, unknown> {
  let nginx: string;
  try {
    nginx = execSync("nginx -v 2>&1").toString().trim(); // nginx prints its version on stderr
  } catch {
    nginx = "not on PATH";
  }
  return {
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    memory_gib: +(totalmem() / 2 ** 30).toFixed(1),
    kernel: release(),
    node: process.version,
    nginx,
    runtime: runtime.name,
  };
}

/** Runs `use` on the variant's own nginx, with the memcached keys and rules document it needs, then stops it. */
async function withVariant<T>(
  bed: Bed,
  memcached: MemcachedServer,
  flags: FlagStore,
  v: Variant,
  use: (nginx: NginxServer) => Promise<T>,
): Promise<T> {
  const nginx = await startVariant(bed, v.http);
  try {
    for (const [k, val] of Object.entries(v.keys ?? {})) await flags.set(k, val);
    if (await writeVariantRules(memcached.address, v)) await sleep(RULES_LOADED_MS);
    return await use(nginx);
  } finally {
    await nginx.stop();
  }
}

async function main(): Promise<number> {
  const runtime = await createRuntime(values.runtime as "native" | "containers");
  const memcached = await MemcachedServer.start(runtime, { memoryMb: 256 });
  const flags = new FlagStore(memcached.address);
  const stable = await freePort();
  const canary = await freePort();
  const backends = await startNginx(runtime, [...backend("stable", stable), ...backend("canary", canary)], stable);
  pinAside(await workersOf(backends));
  const luaPaths = runtime.flavour === "debian" ? [LUA_DIR, LUA_SHIM_DIR] : [LUA_DIR];
  const bed: Bed = { runtime, luaPaths, ports: { stable, canary, memcached: memcached.port } };
  const result: Record<string, unknown> = { machine: machine(runtime), load: LOAD };
  const targets: Goal[] = [];
  try {
    if (PARTS.has("main")) {
      const main = await compareVariants(bed, LOAD, memcached, flags);
      result.rows = main.rows;
      targets.push(...main.targets);
    }
    if (PARTS.has("pairs")) {
      const pairs = await floorPairs(bed, { pairs: Number(values.pairs), seconds: 1, connections: LOAD.connections });
      result.pairs = pairs.rows;
      console.log(
        `\nEach pattern's router against its floor: ${values.pairs} pairs of A B B A windows of 1 s, worker CPU µs per request\n`,
      );
      console.log(pairs.table);
      for (const r of pairs.rows) {
        targets.push({
          name: `router by ${r.pattern}, cached, <= its floor + ${FLOOR_MARGIN_US} µs CPU/request`,
          value: r.median,
          met: r.median <= FLOOR_MARGIN_US,
          spread: { label: "95 % interval", min: r.low, max: r.high },
        });
      }
    }
    if (PARTS.has("instructions")) {
      if (runtime.name !== "native" || !installed("valgrind")) {
        console.log(
          "\nInstructions: needs the native runtime and valgrind (apt-get install valgrind), so none counted",
        );
      } else {
        const rows = await instructionPairs(bed, 2000, 3000);
        result.instructions = rows;
        console.log(
          "\nEach pattern's router against its floor, counted: instructions per request (callgrind, 3,000 requests)\n",
        );
        console.log(
          table(
            ["pattern", "floor", "router", "router − floor"],
            rows.map((r) => [r.pattern, fmt(r.floor, 0), fmt(r.router, 0), fmt(r.router - r.floor, 0)]),
          ),
        );
      }
    }
    if (PARTS.has("growth")) {
      const points = await growth(
        { ...bed, memcached, flags, load: GROWTH_LOAD },
        { flagged: [10, 1000, 100000, 1000000], clients: [10, 1000, 10000, 100000], ranges: [1, 100, 10000] },
      );
      result.growth = { load: GROWTH_LOAD, points };
      // Router CPU over plain's in the same rounds, so drift between points cancels out.
      const memoryOnly = points.filter((p) => p.series === NO_IP_KEYS_SERIES).map((p) => p.cpuUs - p.plainCpuUs);
      if (memoryOnly.length > 1) {
        const worst = Math.max(...memoryOnly.slice(1).map((d) => d - memoryOnly[0]!));
        targets.push({
          name: "ip_keys = false: each clients row's CPU over plain within 2 µs of the 10-client row's (µs)",
          value: worst,
          met: worst <= 2,
        });
      }
      console.log(
        `\nGrowth (${GROWTH_LOAD.rounds} rounds x ${GROWTH_LOAD.seconds} s per point, router against plain proxy_pass in the same rounds)\n`,
      );
      console.log(
        table(
          ["grows", "to", "router req/s", "ratio to plain", "worker CPU µs/req (plain)", "note"],
          points.map((p) => [
            p.series,
            p.point,
            fmt(p.rps, 0),
            fmt(p.ratio),
            `${fmt(p.cpuUs, 1)} (${fmt(p.plainCpuUs, 1)})`,
            p.note,
          ]),
        ),
      );
    }
    if (PARTS.has("rules")) {
      const loads = await documentLoads(bed, memcached, [10000, 100000, 1000000]);
      result.rules = loads;
      console.log(
        "\nRules document: a revision written while wrk runs (8 connections, 1 worker); the load, and the slowest request against a run with nothing loading\n",
      );
      console.log(
        table(
          [
            "entries",
            "bytes (chunks)",
            "loaded in (ms)",
            "p99 / max ms, quiet",
            "p99 / max ms, loading",
            "worker RssAnon +MiB",
          ],
          loads.map((r) => [
            r.entries.toLocaleString("en"),
            `${r.bytes.toLocaleString("en")} (${r.chunks})`,
            fmt(r.loadMs, 0),
            `${fmt(r.quiet.p99Ms)} / ${fmt(r.quiet.maxMs)}`,
            `${fmt(r.loading.p99Ms)} / ${fmt(r.loading.maxMs)}`,
            fmt(r.workerKib / 1024, 1),
          ]),
        ),
      );
      const load = await storeLoad(bed, memcached, flags, 30);
      result.storeLoad = load;
      const perSecond = (n: number) => fmt(n / load.seconds, 1);
      console.log(
        `\nmemcached gets, ip_keys = false, ${load.workers} workers, ${load.seconds} s each: idle ${load.idle.gets} (${perSecond(load.idle.gets)}/s); ` +
          `${load.loaded.requests.toLocaleString("en")} requests from 100,000 clients: ${load.loaded.gets} (${perSecond(load.loaded.gets)}/s)`,
      );
      const ratio = load.loaded.gets / Math.max(load.idle.gets, 1);
      targets.push({
        name: "ip_keys = false: memcached gets under load ÷ idle ≈ 1 (within 0.8..1.25)",
        value: ratio,
        met: ratio >= 0.8 && ratio <= 1.25,
      });
      const hundredK = loads.find((r) => r.entries === 100000);
      if (hundredK) {
        targets.push({
          name: "100,000 entries load in ≤ 1 s (ms)",
          value: hundredK.loadMs,
          met: hundredK.loadMs <= 1000,
        });
        const extra = hundredK.loading.maxMs - hundredK.quiet.maxMs;
        targets.push({
          name: "slowest request while 100,000 load: ≤ 20 ms over the quiet run's (ms)",
          value: extra,
          met: extra <= 20,
        });
      }
    }
    if (PARTS.has("memory")) {
      const runs = [];
      for (const v of VARIANTS.filter((x) => x.name === "cached" || x.name === "rules")) {
        runs.push(
          await withVariant(bed, memcached, flags, v, (nginx) =>
            memoryRun(v.name, nginx, MEMORY_REQUESTS, LOAD.connections, v.wrkScript),
          ),
        );
      }
      result.memory = runs;
      console.log(
        `\nMemory: one worker's RssAnon over ${MEMORY_REQUESTS.toLocaleString("en")} requests, sampled every 2 s\n`,
      );
      console.log(
        table(
          ["variant", "requests", "RssAnon after warm-up → end (KiB)", "slope, bytes per request"],
          runs.map((r) => [
            r.variant,
            r.requests.toLocaleString("en"),
            `${r.firstKib} → ${r.lastKib}`,
            fmt(r.slopeBytesPerRequest, 3),
          ]),
        ),
      );
      const worst = Math.max(...runs.map((r) => r.slopeBytesPerRequest));
      targets.push({ name: "worker RSS slope ≈ 0 (< 1 byte per request)", value: worst, met: worst < 1 });
    }
    if (PARTS.has("profile")) {
      if (!installed("perf")) {
        console.log("\nProfile: perf is not installed (apt-get install linux-perf), so no profile");
      } else {
        const profiles: Profile[] = [];
        for (const v of VARIANTS.filter((x) =>
          ["plain", "floor", "cached", "floor-var", "cached-var", "uncounted", "rules"].includes(x.name),
        )) {
          profiles.push(
            await withVariant(bed, memcached, flags, v, (nginx) =>
              profile(v.name, nginx, LOAD.seconds, LOAD.connections, v.wrkScript),
            ),
          );
        }
        const plainKernel = profiles[0]!.kernel;
        for (const p of profiles) p.cpuVsPlain = plainKernel / p.kernel;
        result.profile = profiles;
        console.log(
          `\nProfile: a worker's samples by where they fell (perf, cpu-clock at 2 kHz, ${LOAD.seconds} s each)\n`,
        );
        console.log(
          table(
            ["variant", "kernel %", "nginx %", "libc %", "Lua layer %", "CPU per request vs plain"],
            profiles.map((p) => [
              p.variant,
              fmt(p.kernel, 1),
              fmt(p.nginx, 1),
              fmt(p.libc, 1),
              fmt(p.lua, 1),
              `${fmt(p.cpuVsPlain!)} (ratio ${fmt(1 / p.cpuVsPlain!)})`,
            ]),
          ),
        );
      }
    }
    if (PARTS.has("helpers")) {
      const t = await helperTimes(runtime, luaPaths);
      result.helpers = t;
      console.log(
        `\nTypeScriptToLua helpers on the request path (ns per call, nginx's LuaJIT): __TS__StringCharCodeAt ${fmt(t.charCodeAtHelper)} vs string.byte ${fmt(t.stringByte)}; ` +
          `parseAddress IPv4 ${fmt(t.parseAddressV4, 0)}, IPv6 ${fmt(t.parseAddressV6, 0)}; user-id check (22 bytes) ${fmt(t.userIdCheck, 0)}; ` +
          `a flagged address among 100,000: Lua table ${fmt(t.tableLookup, 0)}, lua_shared_dict ${fmt(t.dictLookup, 0)}`,
      );
    }
    if (PARTS.has("histogram")) {
      const h = await histogramCost(runtime, luaPaths);
      result.histogram = h;
      console.log(
        `\nThe log line's counting (ns per request, nginx's LuaJIT): ${fmt(h.without)} without the latency histogram, ${fmt(h.with)} with it`,
      );
    }
    if (PARTS.has("path")) {
      const p = await pathCost(runtime, luaPaths, memcached.port);
      result.path = p;
      console.log(
        `\nThe router's work per request (ns per call, nginx's LuaJIT): route_upstream() ${fmt(p.routeCached, 0)} with a cached seed-key lookup, ${fmt(p.routeNoIpKeys, 0)} with ip_keys = false; log() ${fmt(p.log, 0)}`,
      );
    }
    if (PARTS.has("locked")) {
      const locked = await lockedStoreCost(bed, LOAD);
      result.locked = locked.rows;
      console.log(
        `\nA locked store: the router's CPU per request against each kind of memcached (${LOAD.rounds} rounds)\n`,
      );
      console.log(locked.table);
      const cpu = (store: string, clients: string) =>
        locked.rows.find((r) => r.store.startsWith(store) && r.clients.startsWith(clients))!.cpuUs;
      const loginCost = cpu("-Y", "a new") - cpu("open", "a new");
      targets.push({
        name: "authentication: a lookup per request costs what it does on an open store (within 2 µs)",
        value: loginCost,
        met: loginCost <= 2,
      });
    }
    if (PARTS.has("fleet")) {
      const f = await fleetStoreLoad(runtime, LOAD.seconds * 2);
      result.fleet = f;
      console.log(
        `\nFleet: the store's load, ${f.routers} routers × ${f.workers} workers, ip_keys = false, cache_ttl_ms ${f.cacheTtlMs} (expected ${f.expectedGetsPerS} gets/s)\n`,
      );
      console.log(
        table(
          ["phase", "requests/s", "memcached cmd_get/s (all nodes)", "cmd_touch/s"],
          f.rows.map((r) => [r.phase, fmt(r.rps, 0), fmt(r.getsPerS, 1), fmt(r.touchesPerS, 1)]),
        ),
      );
      const spread = Math.max(...f.rows.map((r) => r.getsPerS)) - Math.min(...f.rows.map((r) => r.getsPerS));
      targets.push({
        name: "fleet: store gets/s the same idle and under load (within 10 % of the expected)",
        value: spread,
        met: spread <= f.expectedGetsPerS * 0.1,
      });
    }
    if (PARTS.has("poller")) {
      const p = await pollerCost(bed, LOAD, memcached, flags);
      result.poller = p;
      console.log(
        `\nPollers: the router by variable (ip_keys = false, a weight, a release running) under wrk (${LOAD.connections} connections, 1 worker), ${LOAD.rounds} rounds x ${LOAD.seconds} s, interleaved; pollers ask /gray/status?format=json once a second each\n`,
      );
      console.log(
        table(
          [
            "pollers",
            "req/s (median)",
            "min..max",
            "worker CPU µs/req",
            "CPU over no poller, µs/req (min..max)",
            "status answers (median ms)",
            "failed",
          ],
          p.rows.map((r) => [
            r.name,
            fmt(r.rps, 0),
            `${fmt(r.rpsMin, 0)}..${fmt(r.rpsMax, 0)}`,
            fmt(r.cpuUs, 1),
            r.pollers === 0 ? "–" : `${fmt(r.cpuOverNoneUs)} (${fmt(r.cpuOverNoneMin)}..${fmt(r.cpuOverNoneMax)})`,
            r.pollers === 0 ? "–" : `${r.answers} (${fmt(r.answerMs, 1)})`,
            String(r.failed),
          ]),
        ),
      );
      console.log(
        `\nOne at a time with no other traffic, a status answer (JSON, ${p.statusBytes} bytes) takes ${fmt(p.statusAnswerUs, 1)} µs of worker CPU ` +
          `(a routed request measured the same way: ${fmt(p.routedAnswerUs, 1)} µs; the page itself, HTML, once per open: ${fmt(p.pageAnswerUs, 1)} µs), ` +
          `so a poller at 1/s costs ${fmt(p.statusAnswerUs / 1e4, 3)} % of a core`,
      );
    }
    console.log("");
    for (const t of targets) {
      const spread = t.spread ? ` (${t.spread.label}: ${fmt(t.spread.min)}..${fmt(t.spread.max)})` : "";
      console.log(`${t.met ? "met   " : "MISSED"}  ${t.name}: ${fmt(t.value)}${spread}`);
    }
    result.targets = targets;
    const dir = join(ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
    console.log(`\nwrote ${file}`);
    return targets.every((t) => t.met) ? 0 : 1;
  } finally {
    flags.close();
    await backends.stop();
    await memcached.stop();
  }
}

void main().then((code) => process.exit(code));
