/**
 * /gray/status documents made up for tests: counters chosen by the test, the rest as a router
 * with a stable and canaries reports it. For the watch's rates (as data) and for fake routers (as JSON).
 */
import { type Histogram, LATENCY_LE, type Status } from "../lua-src/gray/status.ts";
import type { FleetReading } from "../node-src/cli/fleet.ts";
import type { ReleaseState } from "../node-src/cli/release-state.ts";

export interface RouteSpec {
  requests: number;
  errors?: number;
  /** Requests per latency bucket (LATENCY_LE, then +Inf); default: all in the first (≤ 5 ms). */
  buckets?: number[];
  /** No histogram at all (a router before 0.3). */
  noLatency?: boolean;
}

function histogram(spec: RouteSpec): Histogram {
  const counts = Array<number>(LATENCY_LE.length + 1).fill(0);
  (spec.buckets ?? [spec.requests]).forEach((n, i) => (counts[i] = n));
  return { counts, sum: 0.001 * spec.requests, count: counts.reduce((a, b) => a + b, 0) };
}

export interface StatusSpec {
  routes: Record<string, RouteSpec>;
  /** Canary weights (default 0 each). */
  weights?: Record<string, number>;
  revision?: number;
  lookups?: number;
  lookupErrors?: number;
  lastError?: string;
}

export function fakeStatus(spec: StatusSpec): Status {
  const names = Object.keys(spec.routes);
  const routes: Status["routes"] = {};
  for (const name of names) {
    const r = spec.routes[name]!;
    routes[name] = {
      requests: r.requests,
      responses_5xx: r.errors ?? 0,
      upstream_seconds: 0.001 * r.requests,
      latency: r.noLatency ? (undefined as unknown as Histogram) : histogram(r),
    };
  }
  const canaries: Status["canaries"] = {};
  for (const name of names.filter((n) => n !== "stable"))
    canaries[name] = { weight: spec.weights?.[name] ?? 0, location: `@${name}`, upstream: name };
  const total = names.reduce((n, r) => n + spec.routes[r]!.requests, 0);
  return {
    routes,
    latency_le: LATENCY_LE,
    route_names: names,
    rules: { override: 0, user: 0, ip: 0, range: 0, weight: total, none: 0 },
    store: { hits: spec.lookups ?? 0, misses: 0, fallbacks: 0 },
    store_errors: { lookup: spec.lookupErrors ?? 0, refresh: 0 },
    cache_evictions: 0,
    weight: spec.weights?.canary ?? 0,
    ranges: 0,
    canaries,
    stable_target: { location: "@stable", upstream: "stable" },
    document: {
      revision: spec.revision ?? 1764480000123,
      age_s: 9,
      source: "memcached",
      loaded_at: 1764480001,
      checked_at: 1764480010,
      bytes: 200,
      entries: { ips: 2, ranges: 1, users: 0 },
      // As the router writes them: null, not absent, for nothing wrong.
      last_error: spec.lastError ?? (null as unknown as undefined),
      missing_since: null as unknown as undefined,
    },
    cache_dict: "gray_cache",
    memcached: "127.0.0.1:11211",
    config: { key_prefix: "", canary_value: "1", ranges: [], weight: 0, ip_keys: false, canaries: {} },
  };
}

/** A reading of several routers at `at` ms: a Status for those that answered, an error for the others. */
export function reading(at: number, routers: Record<string, Status | string>): FleetReading {
  const statuses = new Map<string, Status>();
  const missing: FleetReading["missing"] = [];
  for (const [url, r] of Object.entries(routers))
    if (typeof r === "string") missing.push({ url, error: r });
    else statuses.set(url, r);
  return { at, statuses, missing };
}

/** What a test says of a release; the rest is a release of `canary` over 10, 50, 100 %, running at step 2 (50 %). */
export type ReleaseSpec = Pick<
  ReleaseState,
  "id" | "owner" | "host" | "started_at" | "lease_until" | "routers" | "samples" | "verdicts"
>;

export function releaseAtStep2(spec: ReleaseSpec): ReleaseState {
  return {
    format: 1,
    pid: 4242,
    canary: "canary",
    steps: [10, 50, 100],
    from_weight: 0,
    step: 2,
    weight: 50,
    state: "running",
    control: "run",
    ...spec,
  };
}
