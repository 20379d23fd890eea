/**
 * Several routers read as one fleet: `--status-url` given more than once, or `--routers FILE`
 * (one status URL a line, # comments). Each is read in parallel; one that does not answer is
 * named, never taken for a router with nothing to report. Counters add up; latency histograms
 * add up bucket by bucket (every router has the same buckets).
 */
import { readFileSync } from "node:fs";
import { type Histogram, LATENCY_LE, type RouteCounts, type Status } from "../../lua-src/gray/status.ts";
import { type Context, UsageError, stringFlag } from "./command.ts";
import { httpUrl } from "./shared-flags.ts";
import { DEFAULT_STATUS_URL, RouterError, fetchStatus } from "./status.ts";

export const routersOptions = {
  "status-url": { type: "string", multiple: true },
  routers: { type: "string" },
} as const;

export const routersHelp = [
  `  --status-url URL       a router's status location (default ${DEFAULT_STATUS_URL}); repeat it for several routers`,
  "  --routers FILE         a file listing the routers' status URLs, one a line (# comments)",
];

/** The routers' status URLs from --status-url (repeated) and --routers FILE; the default one when neither is given. */
export function routersOf(ctx: Context, legacyFlag?: string): string[] {
  const given = (ctx.values["status-url"] as string[] | undefined) ?? [];
  const urls = [...given];
  const legacy = legacyFlag === undefined ? undefined : stringFlag(ctx, legacyFlag);
  if (legacy !== undefined) urls.push(legacy);
  const file = stringFlag(ctx, "routers");
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new UsageError(`--routers: cannot read ${file}: ${(err as Error).message}`);
    }
    const listed = text
      .split("\n")
      .map((l) => l.replace(/#.*$/, "").trim())
      .filter((l) => l !== "");
    if (listed.length === 0) throw new UsageError(`--routers: ${file} lists no status URL`);
    urls.push(...listed);
  }
  if (urls.length === 0) urls.push(DEFAULT_STATUS_URL);
  for (const url of urls) httpUrl(legacy !== undefined && url === legacy ? legacyFlag! : "status-url", url);
  return [...new Set(urls)];
}

/** One reading of every router: its status, or why it did not answer. */
export interface FleetReading {
  /** ms since the epoch, when the reading was taken. */
  at: number;
  statuses: Map<string, Status>;
  /** Routers that did not answer, with the reason. */
  missing: { url: string; error: string }[];
}

export async function readFleet(urls: string[]): Promise<FleetReading> {
  const at = Date.now();
  const results = await Promise.allSettled(urls.map((u) => fetchStatus(u)));
  const statuses = new Map<string, Status>();
  const missing: FleetReading["missing"] = [];
  results.forEach((r, i) => {
    if (r.status === "fulfilled") statuses.set(urls[i]!, r.value);
    else
      missing.push({
        url: urls[i]!,
        error: r.reason instanceof RouterError ? r.reason.message : String(r.reason),
      });
  });
  return { at, statuses, missing };
}

export function emptyHistogram(): Histogram {
  return { counts: Array<number>(LATENCY_LE.length + 1).fill(0), sum: 0, count: 0 };
}

export function emptyRoute(): RouteCounts {
  return { requests: 0, responses_5xx: 0, upstream_seconds: 0, latency: emptyHistogram() };
}

/** a + sign × b, route by route (a histogram missing on either side stays missing: undefined latency). */
export function combineRoutes(a: RouteCounts, b: RouteCounts, sign: 1 | -1): RouteCounts {
  const latency =
    a.latency === undefined || b.latency === undefined
      ? (undefined as unknown as Histogram)
      : {
          counts: a.latency.counts.map((n, i) => n + sign * (b.latency.counts[i] ?? 0)),
          sum: a.latency.sum + sign * b.latency.sum,
          count: a.latency.count + sign * b.latency.count,
        };
  return {
    requests: a.requests + sign * b.requests,
    responses_5xx: a.responses_5xx + sign * b.responses_5xx,
    upstream_seconds: a.upstream_seconds + sign * b.upstream_seconds,
    latency,
  };
}

/** Every route's counters summed over the statuses given. */
export function sumRoutes(statuses: Iterable<Status>): Record<string, RouteCounts> {
  const out: Record<string, RouteCounts> = {};
  for (const s of statuses)
    for (const name of s.route_names) out[name] = combineRoutes(out[name] ?? emptyRoute(), s.routes[name]!, 1);
  return out;
}

/** The fleet as one status: counters summed, the rest (weights, document, config) from the first router that answered. */
export function sumStatus(statuses: Status[]): Status {
  const first = statuses[0]!;
  const sum: Status = structuredClone(first);
  const names = [...first.route_names];
  for (const s of statuses.slice(1)) for (const n of s.route_names) if (!names.includes(n)) names.push(n);
  sum.route_names = names;
  sum.routes = sumRoutes(statuses);
  for (const s of statuses.slice(1)) {
    for (const k of Object.keys(sum.rules) as (keyof Status["rules"])[]) sum.rules[k] += s.rules[k];
    for (const k of Object.keys(sum.store) as (keyof Status["store"])[]) sum.store[k] += s.store[k];
    for (const k of Object.keys(sum.store_errors) as (keyof Status["store_errors"])[])
      sum.store_errors[k] += s.store_errors[k];
    sum.cache_evictions += s.cache_evictions;
  }
  return sum;
}
