/**
 * How the router's cost moves with what it is given: flagged IPs in memcached (per-IP seed keys),
 * distinct clients, ranges (in the rules document), workers. Each point is measured against plain proxy_pass in the same interleaved
 * rounds, as req/s ratio and as worker CPU per request.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { bulkSet, type FlagStore } from "../harness/flags.ts";
import type { MemcachedServer } from "../harness/memcached.ts";
import type { NginxServer } from "../harness/nginx.ts";
import { setRanges } from "../harness/rules.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import type { LuaValue } from "../node-src/lua-literal.ts";
import { type Bed, type RoundPlan, type Sample, interleave, median, ratios, startVariant } from "./measure.ts";
import { cyclingClient, cyclingClients, plain, router } from "./variants.ts";

export interface GrowthPoint {
  series: string;
  point: string;
  rps: number;
  ratio: number;
  /** Router workers' CPU µs per request, and plain's in the same rounds. */
  cpuUs: number;
  plainCpuUs: number;
  /** What else the point showed (cache hit rate, ranges in force). */
  note: string;
}

export interface GrowthContext extends Bed {
  memcached: MemcachedServer;
  flags: FlagStore;
  load: RoundPlan;
}

const TRUSTED = { trusted_proxies: ["127.0.0.1"] };
export const NO_IP_KEYS_SERIES = "clients, ip_keys = false";
/** Longer than cache_ttl_ms (500) and a load: the workers have loaded the new rules revision. */
const REFRESHED_MS = 1200;

interface Series {
  name: string;
  /** The router's configure() options (default: the trusted proxy only). */
  options?: Record<string, LuaValue>;
  /** What the note says about a run (default: the per-IP key cache's hit rate). */
  note?: (ctx: GrowthContext, url: string, run: () => Promise<void>) => Promise<string>;
  points: { label: string; prepare?: () => Promise<void>; script?: string; workers?: number }[];
}

/** memcached's gets per second over a run: with ip_keys = false, only the workers' rules checks. */
async function storeGets(ctx: GrowthContext, _url: string, run: () => Promise<void>): Promise<string> {
  const before = Number((await ctx.flags.stats()).cmd_get);
  const started = performance.now();
  await run();
  const seconds = (performance.now() - started) / 1000;
  const gets = Number((await ctx.flags.stats()).cmd_get) - before;
  return `memcached gets ${(gets / seconds).toFixed(1)}/s`;
}

/** The store's hit rate over a run, from /gray/status (counters reach the dict within a second). */
async function hitRate(_ctx: GrowthContext, url: string, run: () => Promise<void>): Promise<string> {
  const before = (await fetchStatus(`${url}/gray/status`)).store;
  await run();
  await sleep(1100);
  const after = (await fetchStatus(`${url}/gray/status`)).store;
  const hits = after.hits - before.hits;
  const misses = after.misses - before.misses;
  return `cache hits ${((100 * hits) / Math.max(hits + misses, 1)).toFixed(1)} %`;
}

async function runSeries(ctx: GrowthContext, series: Series): Promise<GrowthPoint[]> {
  const out: GrowthPoint[] = [];
  let current: { workers: number; plain: NginxServer; router: NginxServer } | undefined;
  try {
    for (const p of series.points) {
      const workers = p.workers ?? 1;
      if (current?.workers !== workers) {
        await current?.plain.stop();
        await current?.router.stop();
        // Several workers share the port through reuseport, or one would take most connections.
        const listen = workers > 1 ? " reuseport" : "";
        current = {
          workers,
          plain: await startVariant(ctx, plain(listen), workers),
          router: await startVariant(ctx, router(series.options ?? TRUSTED, listen), workers),
        };
      }
      await p.prepare?.();
      const { plain: plainNginx, router: routerNginx } = current;
      const name = `${series.name} ${p.label}`;
      let samples = new Map<string, Sample[]>();
      const note = await (series.note ?? hitRate)(ctx, routerNginx.url, async () => {
        // Plain proxy_pass gets the same requests, so the pair differs only in the routing.
        samples = await interleave(
          [
            { name: "plain", nginx: plainNginx, script: p.script, workers },
            { name, nginx: routerNginx, script: p.script, workers },
          ],
          ctx.load,
        );
      });
      const plainSamples = samples.get("plain")!;
      const routerSamples = samples.get(name)!;
      const status = await fetchStatus(`${routerNginx.url}/gray/status`);
      out.push({
        series: series.name,
        point: p.label,
        rps: median(routerSamples.map((s) => s.rps)),
        ratio: median(ratios(routerSamples, plainSamples)),
        cpuUs: median(routerSamples.map((s) => s.cpuUs)),
        plainCpuUs: median(plainSamples.map((s) => s.cpuUs)),
        note: series.name === "ranges" ? `${status.ranges} ranges in force` : note,
      });
    }
  } finally {
    await current?.plain.stop();
    await current?.router.stop();
  }
  return out;
}

function* bulkKeys(from: number, to: number): Generator<string> {
  // The first thousand flags are clients the run asks for (so some go to canary); the rest are
  // other keys, in 2001:db8::/32 form, that only fill memcached.
  for (let i = from; i < to; i++)
    yield i < 1000 ? cyclingClient(i * 97) : `2001:db8::${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}`;
}

/** 100.64.0.0/10-ish /24s, every other one so none merge with the next. */
function rangeList(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `100.${64 + (i >> 7)}.${(i & 127) * 2}.0/24`);
}

export async function growth(
  ctx: GrowthContext,
  sizes: { flagged: number[]; clients: number[]; ranges: number[] },
): Promise<GrowthPoint[]> {
  await ctx.flags.flush();
  let flagged = 0;
  const series: Series[] = [
    {
      name: "flagged IPs",
      points: sizes.flagged.map((n) => ({
        label: n.toLocaleString("en"),
        script: cyclingClients(),
        prepare: async () => {
          flagged += await bulkSet(ctx.memcached.address, bulkKeys(flagged, n));
        },
      })),
    },
    {
      name: "clients",
      points: sizes.clients.map((n) => ({ label: n.toLocaleString("en"), script: cyclingClients(n) })),
    },
    {
      // No per-IP keys: every client is answered from the rules in memory, however many there are.
      name: NO_IP_KEYS_SERIES,
      options: { ...TRUSTED, ip_keys: false },
      note: storeGets,
      points: sizes.clients.map((n) => ({ label: n.toLocaleString("en"), script: cyclingClients(n) })),
    },
    {
      name: "ranges",
      points: sizes.ranges.map((n) => ({
        label: n.toLocaleString("en"),
        // 1,000 clients outside every range: each request searches the whole structure.
        script: cyclingClients(1000),
        prepare: async () => {
          await setRanges(ctx.memcached.address, "", rangeList(n));
          await sleep(REFRESHED_MS);
        },
      })),
    },
    { name: "workers", points: [1, 2].map((w) => ({ label: `${w}`, workers: w })) },
  ];
  const out: GrowthPoint[] = [];
  for (const s of series) {
    out.push(...(await runSeries(ctx, s)));
    await ctx.flags.flush();
  }
  return out;
}
