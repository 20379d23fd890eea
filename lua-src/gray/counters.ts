/**
 * Live counters: added up per worker in a Lua table (no lock on the request path) and flushed
 * into the shared dict once a second, so /gray/status, served by any worker, sees every worker
 * within a second.
 */
import type { Rule } from "./rules.ts";
import { RULES } from "./rules.ts";
import {
  LATENCY_LE,
  ROUTE_FIELDS,
  type RouteCounts,
  STORE_ERROR_FIELDS,
  STORE_FIELDS,
  type StoreCounts,
  type StoreErrorCounts,
} from "./status.ts";

const FLUSH_INTERVAL_S = 1;

/**
 * Counters are numbered slots: counting is an array update, no string hashing per request.
 * Each slot's dict key has a space, which keeps it apart from cached memcached keys (they cannot contain one).
 */
const names: string[] = [];
/** This worker's counts not yet in the dict, by slot. */
const pending: number[] = [];
function slot(group: string, field: string): number {
  names.push(`gray ${group} ${field}`);
  pending.push(0);
  return names.length - 1;
}

export interface RouteSlots {
  requests: number;
  responses_5xx: number;
  upstream_seconds: number;
  /** One slot per latency bucket (LATENCY_LE, then +Inf), and the sum of the times observed. */
  latency: number[];
  latency_sum: number;
}

function latencySlots(group: string): number[] {
  const slots: number[] = [];
  for (let i = 0; i <= LATENCY_LE.length; i++) slots.push(slot(group, `latency ${i}`));
  return slots;
}

/** Route counters by route name ("stable" and each canary), made by useRoutes(). */
let routeSlots: Record<string, RouteSlots> = {};
let routeNames: string[] = [];

/** Counters for these routes (configure() names them; slots of routes dropped by a reload stay, unused). */
export function useRoutes(routes: string[]): void {
  const known = routeSlots;
  routeSlots = {};
  routeNames = routes;
  for (const route of routes) {
    routeSlots[route] = known[route] ?? {
      requests: slot(`route ${route}`, "requests"),
      responses_5xx: slot(`route ${route}`, "responses_5xx"),
      upstream_seconds: slot(`route ${route}`, "upstream_seconds"),
      latency: latencySlots(`route ${route}`),
      latency_sum: slot(`route ${route}`, "latency_sum"),
    };
  }
}

export function routeCounter(route: string): RouteSlots | undefined {
  return routeSlots[route];
}
export const RULE_COUNTER = {} as Record<Rule, number>;
for (const rule of RULES) RULE_COUNTER[rule] = slot("rule", rule);
export const STORE_COUNTER = {} as Record<keyof StoreCounts, number>;
for (const field of STORE_FIELDS) STORE_COUNTER[field] = slot("store", field);
export const STORE_ERROR_COUNTER = {} as Record<keyof StoreErrorCounts, number>;
for (const field of STORE_ERROR_FIELDS) STORE_ERROR_COUNTER[field] = slot("store_error", field);
export const EVICTION_COUNTER = slot("cache", "evictions");

let dict: SharedDict | undefined;
let timerStarted = false;

function flush(): void {
  if (dict === undefined) return;
  for (let i = 0; i < names.length; i++) {
    const n = pending[i]!;
    if (n !== 0) {
      dict.incr(names[i]!, n, 0);
      pending[i] = 0;
    }
  }
}

function onTimer(this: void, _premature: boolean): void {
  // Also runs once with premature = true when the worker exits (reload, stop): nothing is lost.
  flush();
}

/** Counting goes nowhere until a dict is given (the router runs uncached without one). */
export function useDict(zone: SharedDict | undefined): void {
  dict = zone;
}

export function count(counter: number, n: number): void {
  if (dict === undefined) return;
  pending[counter] = pending[counter]! + n;
  if (!timerStarted) {
    // Started lazily: timers cannot be created in init_by_lua, and this needs no init_worker hook.
    const [ok] = ngx.timer.every(FLUSH_INTERVAL_S, onTimer);
    timerStarted = ok !== undefined;
  }
}

const LAST_BOUND = LATENCY_LE.length;

/**
 * A response time into its route's histogram: a few comparisons (most answers fall in the first
 * buckets) and two array updates, flushed with the other counters.
 */
export function observe(slots: RouteSlots, seconds: number): void {
  if (dict === undefined) return;
  let i = 0;
  while (i < LAST_BOUND && seconds > LATENCY_LE[i]!) i++;
  const bucket = slots.latency[i]!;
  pending[bucket] = pending[bucket]! + 1;
  pending[slots.latency_sum] = pending[slots.latency_sum]! + seconds;
}

function read(counter: number): number {
  if (dict === undefined) return 0;
  const [value] = dict.get(names[counter]!);
  return typeof value === "number" ? value : 0;
}

/** Totals over all workers: this worker's are flushed first, the others' are at most a second old. */
export function totals(): {
  routes: Record<string, RouteCounts>;
  route_names: string[];
  latency_le: number[];
  rules: Record<Rule, number>;
  store: StoreCounts;
  store_errors: StoreErrorCounts;
  cache_evictions: number;
} {
  flush();
  const routes: Record<string, RouteCounts> = {};
  for (const route of routeNames) {
    const slots = routeSlots[route]!;
    const counts = {} as RouteCounts;
    for (const field of ROUTE_FIELDS) counts[field] = read(slots[field]);
    const latency = { counts: [] as number[], sum: read(slots.latency_sum), count: 0 };
    for (const s of slots.latency) {
      const n = read(s);
      latency.counts.push(n);
      latency.count += n;
    }
    counts.latency = latency;
    routes[route] = counts;
  }
  const rules = {} as Record<Rule, number>;
  for (const rule of RULES) rules[rule] = read(RULE_COUNTER[rule]);
  const store = {} as StoreCounts;
  for (const field of STORE_FIELDS) store[field] = read(STORE_COUNTER[field]);
  const storeErrors = {} as StoreErrorCounts;
  for (const field of STORE_ERROR_FIELDS) storeErrors[field] = read(STORE_ERROR_COUNTER[field]);
  return {
    routes,
    route_names: routeNames,
    latency_le: LATENCY_LE,
    rules,
    store,
    store_errors: storeErrors,
    cache_evictions: read(EVICTION_COUNTER),
  };
}
