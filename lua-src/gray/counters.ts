/**
 * Live counters: added up per worker in a Lua table (no lock on the request path) and flushed
 * into the shared dict once a second, so /gray/status, served by any worker, sees every worker
 * within a second.
 */
import type { Rule } from "./rules.ts";
import { RULES } from "./rules.ts";
import { ROUTES, ROUTE_FIELDS, type RouteCounts, type RouteName, STORE_FIELDS, type StoreCounts } from "./status.ts";

const FLUSH_INTERVAL_S = 1;

/** Dict keys of the counters. The space keeps them apart from cached memcached keys, which cannot contain one. */
function key(group: string, field: string): string {
  return `gray ${group} ${field}`;
}

/** Precomputed names, so counting builds no strings per request. */
export const ROUTE_COUNTER: Record<RouteName, Record<keyof RouteCounts, string>> = {
  stable: { requests: key("stable", "requests"), responses_5xx: key("stable", "responses_5xx"), upstream_seconds: key("stable", "upstream_seconds") },
  canary: { requests: key("canary", "requests"), responses_5xx: key("canary", "responses_5xx"), upstream_seconds: key("canary", "upstream_seconds") },
};
export const RULE_COUNTER = {} as Record<Rule, string>;
for (const rule of RULES) RULE_COUNTER[rule] = key("rule", rule);
export const STORE_COUNTER = {} as Record<keyof StoreCounts, string>;
for (const field of STORE_FIELDS) STORE_COUNTER[field] = key("store", field);

let dict: SharedDict | undefined;
const pending = new LuaTable<string, number>();
let timerStarted = false;

function flush(): void {
  if (dict === undefined) return;
  for (const [name, n] of pending) {
    if (n !== 0) dict.incr(name, n, 0);
    pending.set(name, 0);
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

export function count(name: string, n: number): void {
  if (dict === undefined) return;
  pending.set(name, (pending.get(name) ?? 0) + n);
  if (!timerStarted) {
    // Started lazily: timers cannot be created in init_by_lua, and this needs no init_worker hook.
    const [ok] = ngx.timer.every(FLUSH_INTERVAL_S, onTimer);
    timerStarted = ok !== undefined;
  }
}

function read(name: string): number {
  const value = dict?.get(name);
  return typeof value === "number" ? value : 0;
}

/** Totals over all workers: this worker's are flushed first, the others' are at most a second old. */
export function totals(): { routes: Record<RouteName, RouteCounts>; rules: Record<Rule, number>; store: StoreCounts } {
  flush();
  const routes = {} as Record<RouteName, RouteCounts>;
  for (const route of ROUTES) {
    const counts = {} as RouteCounts;
    for (const field of ROUTE_FIELDS) counts[field] = read(ROUTE_COUNTER[route][field]);
    routes[route] = counts;
  }
  const rules = {} as Record<Rule, number>;
  for (const rule of RULES) rules[rule] = read(RULE_COUNTER[rule]);
  const store = {} as StoreCounts;
  for (const field of STORE_FIELDS) store[field] = read(STORE_COUNTER[field]);
  return { routes, rules, store };
}
