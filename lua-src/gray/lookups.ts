/**
 * The rules' lookups inside nginx. Per-client keys are cached in the lua_shared_dict (found
 * and absent alike) for cache_ttl_ms, shared by all workers; the weight and the range list
 * are kept per worker and re-read on the same period. A change made in memcached therefore
 * routes within cache_ttl_ms plus one round trip, on every worker.
 * When memcached fails, lookups answer from stale cache entries where there are any, else as
 * absent (stable), and the worker leaves the store alone for a moment.
 */
import { EVICTION_COUNTER, STORE_COUNTER, STORE_ERROR_COUNTER, count } from "./counters.ts";
import type { StoreErrorCounts } from "./status.ts";
import type { RouterOptions } from "./options.ts";
import { type Globals, type Lookups, RANGES_KEY, WEIGHT_KEY, liveRanges, liveWeight } from "./rules.ts";
import { fetchFlag, fetchMany } from "./store.ts";

const ngx_now = ngx.now;
const ngx_log = ngx.log;
const ngx_WARN = ngx.WARN;

/** After a store failure, skip the store for this long: a dead or stalled store costs one timeout per worker per interval, not one per request. */
const STORE_RETRY_S = 0.2;
/** At most one warning per worker per this many seconds, however many lookups fall back. */
const WARN_INTERVAL_S = 5;

let options!: RouterOptions;
let connectOptions!: MemcachedConnectOptions;
let dict: SharedDict | undefined;
let ttl = 0;
let storeRetryAt = 0;
let nextWarnAt = 0;
let fallbacksSinceWarn = 0;

let globalKeys: string[] = [];
/** This worker's copy, updated in place: asking for it allocates nothing. */
const globals = {} as Globals;
let rangesText: string | undefined;
let globalsDueAt = 0;
let refreshing = false;

export function installLookups(parsed: RouterOptions, zone: SharedDict | undefined): void {
  options = parsed;
  // Built once here, not per request: cosocket connect options for the pool.
  connectOptions = { pool_size: parsed.memcached.pool_size };
  dict = zone;
  ttl = parsed.cache_ttl_ms / 1000;
  storeRetryAt = 0;
  globalKeys = [parsed.key_prefix + RANGES_KEY, parsed.key_prefix + WEIGHT_KEY];
  rangesText = undefined;
  globals.ranges = liveRanges(parsed.ranges, undefined);
  globals.weight = parsed.weight;
  globalsDueAt = 0;
}

function storeFailed(operation: keyof StoreErrorCounts, reason: string, now: number): void {
  storeRetryAt = now + STORE_RETRY_S;
  count(STORE_ERROR_COUNTER[operation], 1);
  if (now < nextWarnAt) return;
  nextWarnAt = now + WARN_INTERVAL_S;
  const mc = options.memcached;
  ngx_log(
    ngx_WARN,
    "gray.router: memcached ",
    mc.host,
    ":",
    mc.port,
    " failed (",
    reason,
    "); ",
    fallbacksSinceWarn,
    " lookup(s) answered without it since the last warning",
  );
  fallbacksSinceWarn = 0;
}

function fallback(): void {
  fallbacksSinceWarn++;
  count(STORE_COUNTER.fallbacks, 1);
}

/** The store is being left alone after a failure. */
function resting(now: number): boolean {
  return now < storeRetryAt;
}

function staleFlag(key: string): string | undefined {
  fallback();
  if (dict === undefined) return undefined;
  const [value] = dict.get_stale(key);
  return typeof value === "string" ? value : undefined;
}

function flag(key: string): string | undefined {
  if (dict !== undefined) {
    const cached = dict.get(key);
    if (cached !== undefined) {
      count(STORE_COUNTER.hits, 1);
      return typeof cached === "string" ? cached : undefined;
    }
  }
  const now = ngx_now();
  if (resting(now)) return staleFlag(key);
  const [value, failure] = fetchFlag(options.memcached, connectOptions, key);
  if (failure !== undefined) {
    storeFailed("lookup", failure, now);
    return staleFlag(key);
  }
  count(STORE_COUNTER.misses, 1);
  // false marks "absent" (negative caching); a full zone evicts its least recently used entries.
  if (dict !== undefined) {
    const [, , forcible] = dict.set(key, value ?? false, ttl);
    if (forcible) count(EVICTION_COUNTER, 1);
  }
  return value;
}

/** The weight and the range list, re-read when due; one request per worker does it, the others use the current values meanwhile. */
function currentGlobals(): Globals {
  const now = ngx_now();
  if (now < globalsDueAt || refreshing || resting(now)) return globals;
  refreshing = true;
  const [values, failure] = fetchMany(options.memcached, connectOptions, globalKeys);
  refreshing = false;
  if (values === undefined) {
    storeFailed("refresh", failure!, now);
    return globals;
  }
  globalsDueAt = now + ttl;
  const text = values.get(globalKeys[0]!);
  if (text !== rangesText) {
    rangesText = text;
    globals.ranges = liveRanges(options.ranges, text);
  }
  globals.weight = liveWeight(values.get(globalKeys[1]!), options.weight);
  return globals;
}

export const lookups: Lookups = { flag, globals: currentGlobals, hash: ngx.crc32_short };
