/**
 * The benchmark's main table: every variant once per round, interleaved, each scripted one beside
 * plain proxy_pass fed the same requests; then the performance contract's other rows (the seed, a
 * silent error.log, pooled store connections; each pattern against its floor is bench/pairs.ts's).
 */
import { execSync } from "node:child_process";
import type { FlagStore } from "../harness/flags.ts";
import type { MemcachedServer } from "../harness/memcached.ts";
import type { NginxServer } from "../harness/nginx.ts";
import {
  type Bed,
  type RoundPlan,
  type Sample,
  type BenchTarget,
  interleave,
  median,
  ratios,
  startVariant,
  table,
} from "./measure.ts";
import { VARIANTS, type Variant, writeVariantRules } from "./variants.ts";

export interface Goal {
  name: string;
  value: number;
  met: boolean;
  /** For a median: the interval it was judged with, so a miss by noise shows as one. */
  spread?: { label: string; min: number; max: number };
}

export const fmt = (x: number, digits = 2) => x.toFixed(digits);

/** TIME_WAIT sockets towards memcached: flat for a pooled client, growing for a connection per request. */
function timeWaits(port: number): number {
  const out = execSync(`ss -tan state time-wait '( dport = :${port} )' | tail -n +2 | wc -l`).toString();
  return Number(out.trim());
}

/** error.log lines at warn or worse (the first is kept with the results, so a miss says what it was). */
function problems(log: string): string[] {
  return log.split("\n").filter((l) => /\[(warn|error|crit|alert|emerg)\]/.test(l));
}

function logOf(started: { nginx: NginxServer; logOffset: number } | undefined) {
  const lines = started === undefined ? [] : problems(started.nginx.errorLog().slice(started.logOffset));
  return { log_lines: lines.length, first_log_line: lines[0] ?? null };
}

export async function compareVariants(bed: Bed, load: RoundPlan, memcached: MemcachedServer, flags: FlagStore) {
  const started: (BenchTarget & { logOffset: number })[] = [];
  try {
    for (const variant of VARIANTS) {
      const nginx = await startVariant(bed, variant.http);
      started.push({ name: variant.name, nginx, script: variant.wrkScript, logOffset: 0 });
    }
    // A variant driven by a script is compared with plain proxy_pass driven by the same script, so
    // the two differ only in what routes the request, not in what the client sends.
    const plainNginx = started.find((t) => t.name === "plain")!.nginx;
    const baselineOf = (v: Variant) => (v.wrkScript === undefined ? "plain" : `plain·${v.name}`);
    const baselines = VARIANTS.filter((v) => v.wrkScript !== undefined).map((v) => ({
      name: baselineOf(v),
      nginx: plainNginx,
      script: v.wrkScript,
      logOffset: 0,
    }));
    const measured = [...started, ...baselines];
    for (const v of VARIANTS) {
      for (const [k, val] of Object.entries(v.keys ?? {})) await flags.set(k, val);
      await writeVariantRules(memcached.address, v);
    }
    // Warm-up: pools, caches and LuaJIT traces; error.log is judged from here on.
    await interleave(measured, { ...load, rounds: 1, seconds: 1 });
    for (const s of started) s.logOffset = s.nginx.errorLog().length;

    const timeWait = new Map<string, number>();
    const samples = await interleave(measured, load, async (t, run) => {
      const before = timeWaits(memcached.port);
      const s = await run();
      timeWait.set(t.name, Math.max(timeWait.get(t.name) ?? 0, timeWaits(memcached.port) - before));
      return s;
    });
    const described = [
      ...VARIANTS.map((v) => ({
        name: v.name,
        about: v.about,
        baseline: baselineOf(v),
        nginx: started.find((x) => x.name === v.name)!,
      })),
      ...baselines.map((b) => ({
        name: b.name,
        about: `plain proxy_pass with ${b.name.slice("plain·".length)}'s requests: its ratio is taken against this`,
        baseline: "plain",
        nginx: undefined,
      })),
    ];
    const rows = described.map((d) => {
      const rs: Sample[] = samples.get(d.name)!;
      const r = ratios(rs, samples.get(d.baseline)!);
      return {
        variant: d.name,
        about: d.about,
        baseline: d.baseline,
        rps: {
          min: Math.min(...rs.map((x) => x.rps)),
          median: median(rs.map((x) => x.rps)),
          max: Math.max(...rs.map((x) => x.rps)),
        },
        ratio: { min: Math.min(...r), median: median(r), max: Math.max(...r) },
        cpu_us_per_request: median(rs.map((x) => x.cpuUs)),
        p50_ms: median(rs.map((x) => x.p50Ms)),
        p99_ms: median(rs.map((x) => x.p99Ms)),
        // Not a target: under a closed-loop load the tail follows throughput. Shown with its spread.
        p99_spread: { min: Math.min(...rs.map((x) => x.p99Ms)), max: Math.max(...rs.map((x) => x.p99Ms)) },
        errors: rs.reduce((n, x) => n + x.errors, 0),
        ...logOf(d.nginx),
        memcached_time_wait: timeWait.get(d.name) ?? 0,
      };
    });
    const row = (name: string) => rows.find((r) => r.variant === name)!;
    const routers = ["cached", "cached-var", "miss", "rules"].map(row);
    const target = (name: string, value: number, met: boolean): Goal => ({ name, value, met });
    // Each pattern against its own floor, for the table: the median of the rounds' paired differences
    // (VARIANTS lists each router right after its floor). The contract is judged by the pairs part.
    const overFloor = (variant: string, floor: string) =>
      median(samples.get(variant)!.map((s, i) => s.cpuUs - samples.get(floor)![i]!.cpuUs));
    const varOverFloor = overFloor("cached-var", "floor-var");
    const execOverFloor = overFloor("cached", "floor");
    const overSeed = Math.min(row("cached").rps.median, row("cached-var").rps.median) / row("seed").rps.median;
    const logLines = routers.reduce((n, r) => n + r.log_lines, 0);
    for (const r of routers) if (r.first_log_line !== null) console.log(`${r.variant} logged: ${r.first_log_line}`);
    const timeWaitGrowth = Math.max(...routers.map((r) => r.memcached_time_wait));
    const targets = [
      target("router (cached, both patterns) >= 3 x the seed's script", overSeed, overSeed >= 3),
      target("error.log silent (router variants)", logLines, logLines === 0),
      target("memcached TIME_WAIT flat (router variants)", timeWaitGrowth, timeWaitGrowth < 50),
    ];
    const varRps = samples.get("cached-var")!;
    const shownAs = (base: string) => fmt(median(ratios(varRps, samples.get(base)!)));
    console.log(
      `\n${load.rounds} rounds x ${load.seconds} s, wrk -t1 -c${load.connections}, 1 nginx worker per variant, ${bed.runtime.name} runtime\n`,
    );
    console.log(
      table(
        [
          "variant",
          "req/s (median)",
          "min..max",
          "ratio to its plain (min/median/max)",
          "worker CPU µs/req",
          "p50 ms",
          "p99 ms (min..max)",
          "errors",
          "log warn+",
          "mc TIME_WAIT",
        ],
        rows.map((r) => [
          r.variant,
          fmt(r.rps.median, 0),
          `${fmt(r.rps.min, 0)}..${fmt(r.rps.max, 0)}`,
          `${fmt(r.ratio.min)} / ${fmt(r.ratio.median)} / ${fmt(r.ratio.max)}`,
          fmt(r.cpu_us_per_request, 1),
          fmt(r.p50_ms),
          `${fmt(r.p99_ms)} (${fmt(r.p99_spread.min)}..${fmt(r.p99_spread.max)})`,
          `${r.errors}`,
          `${r.log_lines}`,
          `${r.memcached_time_wait}`,
        ]),
      ),
    );
    console.log("");
    for (const r of rows) console.log(`${r.variant}: ${r.about}`);
    console.log(
      `\nrouter by variable (cached): ${shownAs("plain")} x plain, ${shownAs("split_clients")} x split_clients (req/s, median of rounds);` +
        ` CPU over its floor ${fmt(varOverFloor)} µs/request; by ngx.exec ${fmt(execOverFloor)} µs/request over its floor` +
        " (medians of the rounds; the contract is judged in pairs: --parts pairs)",
    );
    return { rows, targets };
  } finally {
    for (const s of started) await s.nginx.stop();
  }
}
