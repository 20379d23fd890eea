/**
 * npm run bench [-- --runtime native|containers] [--rounds N] [--seconds S] [--connections C]
 *
 * Every variant runs once per round, interleaved (A B C … A B C …) so drift on a noisy machine
 * falls on all of them alike; ratios to plain proxy_pass are taken within each round. Prints a
 * table and the targets, and writes the same as JSON under bench/results/.
 */
import { execSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { FlagStore } from "../harness/flags.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { freePort } from "../harness/net.ts";
import { NginxServer } from "../harness/nginx.ts";
import { LUA_DIR, LUA_SHIM_DIR, ROOT } from "../harness/paths.ts";
import { type Runtime, createRuntime } from "../harness/runtime.ts";
import { backend } from "../harness/stack.ts";
import { renderMain } from "../node-src/nginx-conf.ts";
import { VARIANTS, type Variant } from "./variants.ts";
import { type WrkResult, wrk } from "./wrk.ts";

const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "native" },
    rounds: { type: "string", default: "5" },
    seconds: { type: "string", default: "5" },
    connections: { type: "string", default: "32" },
  },
});
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const CONNECTIONS = Number(values.connections);

interface Started {
  variant: Variant;
  nginx: NginxServer;
  logOffset: number;
}

async function startNginx(runtime: Runtime, http: string[], port: number): Promise<NginxServer> {
  const nginx = NginxServer.prepare(renderMain({ flavour: runtime.flavour, workers: 1, http }), port);
  await nginx.start(runtime, [LUA_DIR, LUA_SHIM_DIR]);
  return nginx;
}

/** TIME_WAIT sockets towards memcached: flat for a pooled client, growing for a connection per request. */
function timeWaits(port: number): number {
  const out = execSync(`ss -tan state time-wait '( dport = :${port} )' | tail -n +2 | wc -l`).toString();
  return Number(out.trim());
}

function problems(log: string): number {
  return log.split("\n").filter((l) => /\[(warn|error|crit|alert|emerg)\]/.test(l)).length;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (x: number, digits = 2) => x.toFixed(digits);

function machine(runtime: Runtime): Record<string, unknown> {
  let nginx: string;
  try {
    nginx = execSync("nginx -v 2>&1").toString().trim(); // nginx prints its version on stderr
  } catch {
    nginx = "not on PATH";
  }
  return { cpu: cpus()[0]?.model, cores: cpus().length, memory_gib: +(totalmem() / 2 ** 30).toFixed(1), kernel: release(), node: process.version, nginx, runtime: runtime.name };
}

async function main(): Promise<number> {
  const runtime = await createRuntime(values.runtime as "native" | "containers");
  const memcached = await MemcachedServer.start(runtime, { memoryMb: 256 });
  const flags = new FlagStore(memcached.address);
  const stable = await freePort();
  const canary = await freePort();
  const backends = await startNginx(runtime, [...backend("stable", stable), ...backend("canary", canary)], stable);
  const started: Started[] = [];
  try {
    const luaPaths = runtime.flavour === "debian" ? [LUA_DIR, LUA_SHIM_DIR] : [LUA_DIR];
    for (const variant of VARIANTS) {
      const listen = await freePort();
      const nginx = await startNginx(runtime, variant.http(luaPaths, { listen, stable, canary, memcached: memcached.port }), listen);
      started.push({ variant, nginx, logOffset: 0 });
    }
    for (const v of VARIANTS) for (const [k, val] of Object.entries(v.keys ?? {})) await flags.set(k, val);

    // Warm-up: pools, caches and LuaJIT traces; error.log is judged from here on.
    for (const s of started) {
      await wrk({ url: `${s.nginx.url}/`, seconds: 1, connections: CONNECTIONS, script: s.variant.wrkScript });
      s.logOffset = s.nginx.errorLog().length;
    }

    const results = new Map<string, WrkResult[]>(VARIANTS.map((v) => [v.name, []]));
    const timeWait = new Map<string, number>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of started) {
        const before = timeWaits(memcached.port);
        const r = await wrk({ url: `${s.nginx.url}/`, seconds: SECONDS, connections: CONNECTIONS, script: s.variant.wrkScript });
        timeWait.set(s.variant.name, Math.max(timeWait.get(s.variant.name) ?? 0, timeWaits(memcached.port) - before));
        results.get(s.variant.name)!.push(r);
        process.stderr.write(`round ${round + 1}/${ROUNDS} ${s.variant.name.padEnd(7)} ${fmt(r.rps, 0)} req/s\n`);
      }
    }

    const plain = results.get("plain")!;
    const rows = VARIANTS.map((v) => {
      const rs = results.get(v.name)!;
      const ratios = rs.map((r, i) => r.rps / plain[i]!.rps);
      const s = started.find((x) => x.variant === v)!;
      return {
        variant: v.name,
        about: v.about,
        rps: { min: Math.min(...rs.map((r) => r.rps)), median: median(rs.map((r) => r.rps)), max: Math.max(...rs.map((r) => r.rps)) },
        ratio: { min: Math.min(...ratios), median: median(ratios), max: Math.max(...ratios) },
        p50_ms: median(rs.map((r) => r.p50Ms)),
        p99_ms: median(rs.map((r) => r.p99Ms)),
        errors: rs.reduce((n, r) => n + r.errors, 0),
        log_lines: problems(s.nginx.errorLog().slice(s.logOffset)),
        memcached_time_wait: timeWait.get(v.name) ?? 0,
      };
    });
    const row = (name: string) => rows.find((r) => r.variant === name)!;
    const routers = ["cached", "miss", "rules"].map(row);
    const target = (name: string, value: number, met: boolean) => ({ target: name, value, met });
    const cachedRatio = row("cached").ratio.median;
    const missRatio = row("miss").ratio.median;
    const overSeed = row("cached").rps.median / row("seed").rps.median;
    const addedP99 = row("cached").p99_ms - row("plain").p99_ms;
    const logLines = routers.reduce((n, r) => n + r.log_lines, 0);
    const timeWaitGrowth = Math.max(...routers.map((r) => r.memcached_time_wait));
    const targets = [
      target("cached path >= 0.93 x plain proxy_pass", cachedRatio, cachedRatio >= 0.93),
      target("cache-miss path >= 0.6 x plain proxy_pass", missRatio, missRatio >= 0.6),
      target("router (cached) >= 3 x the seed's script", overSeed, overSeed >= 3),
      target("p99 added over plain <= 0.3 ms (cached)", addedP99, addedP99 <= 0.3),
      target("error.log silent (router variants)", logLines, logLines === 0),
      target("memcached TIME_WAIT flat (router variants)", timeWaitGrowth, timeWaitGrowth < 50),
    ];

    const header = ["variant", "req/s (median)", "min..max", "ratio to plain (min/median/max)", "p50 ms", "p99 ms", "errors", "log warn+", "mc TIME_WAIT"];
    const lines = rows.map((r) => [
      r.variant,
      fmt(r.rps.median, 0),
      `${fmt(r.rps.min, 0)}..${fmt(r.rps.max, 0)}`,
      `${fmt(r.ratio.min)} / ${fmt(r.ratio.median)} / ${fmt(r.ratio.max)}`,
      fmt(r.p50_ms),
      fmt(r.p99_ms),
      `${r.errors}`,
      `${r.log_lines}`,
      `${r.memcached_time_wait}`,
    ]);
    const table = [header, ...lines];
    const widths = header.map((_, i) => Math.max(...table.map((l) => l[i]!.length)));
    console.log(`\n${ROUNDS} rounds x ${SECONDS} s, wrk -t1 -c${CONNECTIONS}, 1 nginx worker per variant, ${runtime.name} runtime\n`);
    for (const l of table) console.log(`| ${l.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`);
    console.log("");
    for (const t of targets) console.log(`${t.met ? "met   " : "MISSED"}  ${t.target}: ${fmt(t.value)}`);

    const dir = join(ROOT, "bench", "results");
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, JSON.stringify({ machine: machine(runtime), rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, rows, targets }, null, 2) + "\n");
    console.log(`\nwrote ${file}`);
    return targets.every((t) => t.met) ? 0 : 1;
  } finally {
    flags.close();
    for (const s of started) await s.nginx.stop();
    await backends.stop();
    await memcached.stop();
  }
}

main().then((code) => process.exit(code));
