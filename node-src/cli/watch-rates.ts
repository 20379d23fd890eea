/**
 * What `gray status --watch` shows for an interval: the difference of two readings of the routers'
 * counters, router by router, then summed. Pure.
 *
 * Router by router, because the fleet's totals cannot be diffed: a router that did not answer one
 * of the two readings would show as a drop (a negative rate) or its whole history as one
 * interval's burst. Such a router is left out of that interval's figures and named. A router whose
 * counters went down between the two readings was restarted (nginx restarted: the counters' shared
 * dict is new; a reload keeps it): for that interval its counts are its values now, the count since
 * the reset, never a negative difference. A route that appears between two readings (a reload that
 * adds a canary) counts from 0 the same way.
 */
import { type RouteCounts, type Status } from "../../lua-src/gray/status.ts";
import { type FleetReading, combineRoutes, emptyRoute, sumStatus } from "./fleet.ts";
import { quantile } from "./latency.ts";

/**
 * A router's part in an interval: "ok" (its differences), "reset" (its counters went down: its
 * counts since the reset), "first" (it answered now but not at the reading before: no figures
 * until the next interval), "missing" (no answer now).
 */
export type RouterState = "ok" | "reset" | "first" | "missing";

export interface RouterInterval {
  url: string;
  state: RouterState;
  /** Why it did not answer ("missing"). */
  error?: string;
  /** Its reading now ("ok", "reset", "first"). */
  status?: Status;
  /** Its counts over the interval ("ok", "reset"): a Status whose counters are differences. */
  delta?: Status;
}

/** One route over the interval. Times in seconds. */
export interface RouteRate {
  requests: number;
  errors: number;
  perSecond: number | undefined;
  /** 5xx / requests, 0..1; undefined with no request. */
  errorRate: number | undefined;
  /** From the histograms' difference; undefined without requests or without histograms. */
  p50: number | undefined;
  p99: number | undefined;
}

export interface Interval {
  /** ms between the two readings; undefined on the first reading. */
  elapsedMs: number | undefined;
  routers: RouterInterval[];
  /** The routers that answered now, summed as `gray status` sums them (weights, document: the first one's). */
  now: Status | undefined;
  /** The interval's counts summed over the routers with two readings; undefined when there is none. */
  counts: Status | undefined;
  /** Per route of `now`, in its order; absent for a route no router counted over the interval. */
  rates: Record<string, RouteRate>;
}

function wentDown(a: number, b: number): boolean {
  return b < a;
}

function routeWentDown(a: RouteCounts, b: RouteCounts): boolean {
  if (wentDown(a.requests, b.requests) || wentDown(a.responses_5xx, b.responses_5xx)) return true;
  if (a.latency === undefined || b.latency === undefined) return false;
  return (
    wentDown(a.latency.count, b.latency.count) || a.latency.counts.some((n, i) => wentDown(n, b.latency.counts[i] ?? 0))
  );
}

/** True when any counter of the router is lower now than before: it was restarted in between. */
export function countersWentDown(before: Status, now: Status): boolean {
  for (const name of now.route_names) {
    const a = before.routes[name];
    const b = now.routes[name];
    if (a !== undefined && b !== undefined && routeWentDown(a, b)) return true;
  }
  const groups = [
    [before.rules, now.rules],
    [before.store, now.store],
    [before.store_errors, now.store_errors],
  ] as [Record<string, number>, Record<string, number>][];
  for (const [a, b] of groups) for (const [k, n] of Object.entries(b)) if (wentDown(a[k] ?? 0, n)) return true;
  return wentDown(before.cache_evictions, now.cache_evictions);
}

function diff<T extends object>(a: T, b: T): T {
  const out = { ...b } as Record<string, number>;
  const was = a as Record<string, number>;
  for (const [k, n] of Object.entries(out)) out[k] = n - (was[k] ?? 0);
  return out as T;
}

/**
 * One router's counts between two readings: `now` with every counter replaced by its difference
 * from `before` (a route `before` lacks counts from 0); after a reset, `now`'s counters as they are.
 */
export function statusDelta(before: Status, now: Status): { delta: Status; reset: boolean } {
  const delta = structuredClone(now);
  if (countersWentDown(before, now)) return { delta, reset: true };
  for (const name of now.route_names) {
    const a = before.routes[name];
    if (a !== undefined) delta.routes[name] = combineRoutes(now.routes[name] ?? emptyRoute(), a, -1);
  }
  delta.rules = diff(before.rules, now.rules);
  delta.store = diff(before.store, now.store);
  delta.store_errors = diff(before.store_errors, now.store_errors);
  delta.cache_evictions = now.cache_evictions - before.cache_evictions;
  return { delta, reset: false };
}

/** A route's rates from its counts over `elapsedMs`. */
export function routeRate(r: RouteCounts, elapsedMs: number, le?: number[]): RouteRate {
  return {
    requests: r.requests,
    errors: r.responses_5xx,
    perSecond: elapsedMs > 0 ? (1000 * r.requests) / elapsedMs : undefined,
    errorRate: r.requests > 0 ? r.responses_5xx / r.requests : undefined,
    p50: quantile(r.latency, 0.5, le),
    p99: quantile(r.latency, 0.99, le),
  };
}

/** The interval from `before` (undefined: the first reading) to `now`, for the routers `urls`. */
export function intervalOf(before: FleetReading | undefined, now: FleetReading, urls: string[]): Interval {
  const routers: RouterInterval[] = urls.map((url) => {
    const b = now.statuses.get(url);
    if (b === undefined)
      return { url, state: "missing", error: now.missing.find((m) => m.url === url)?.error ?? "no answer" };
    const a = before?.statuses.get(url);
    if (a === undefined) return { url, state: "first", status: b };
    const { delta, reset } = statusDelta(a, b);
    return { url, state: reset ? "reset" : "ok", status: b, delta };
  });
  const answered = routers.flatMap((r) => (r.status === undefined ? [] : [r.status]));
  const deltas = routers.flatMap((r) => (r.delta === undefined ? [] : [r.delta]));
  const counts = deltas.length > 0 ? sumStatus(deltas) : undefined;
  const elapsedMs = before === undefined ? undefined : now.at - before.at;
  const rates: Record<string, RouteRate> = {};
  if (counts !== undefined && elapsedMs !== undefined)
    for (const name of counts.route_names)
      rates[name] = routeRate(counts.routes[name] ?? emptyRoute(), elapsedMs, counts.latency_le);
  return { elapsedMs, routers, now: answered.length > 0 ? sumStatus(answered) : undefined, counts, rates };
}
