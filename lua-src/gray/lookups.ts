/**
 * The rules' lookups inside nginx besides the rules document (snapshot.ts): with ip_keys, the
 * per-IP keys of the original recipe. Those are cached in the lua_shared_dict (found
 * and absent alike) for cache_ttl_ms, shared by all workers, so a key typed in telnet routes
 * within cache_ttl_ms plus one round trip.
 * When memcached fails, they answer from stale cache entries where there are any, else as
 * absent, and the worker leaves the store alone for a moment.
 */
import * as lrucache from "resty.lrucache";
import { EVICTION_COUNTER, STORE_COUNTER, STORE_ERROR_COUNTER, count } from "./counters.ts";
import type { RouterOptions } from "./options.ts";
import type { Lookups } from "./rules.ts";
import { fetchFlag } from "./store.ts";

const ngx_now = ngx.now;
const ngx_log = ngx.log;
const ngx_WARN = ngx.WARN;

/** After a store failure, skip the store for this long: a dead or stalled store costs one timeout per worker per interval, not one per request. */
const STORE_RETRY_S = 0.2;
/** At most one warning per worker per this many seconds, however many lookups fall back. */
const WARN_INTERVAL_S = 5;

/**
 * Fresh answers each worker keeps in front of the shared dict, in lua-resty-lrucache: a steady
 * client skips the dict's lock and key compare, the most a cached request spent on ip_keys. Each
 * lives only until its dict entry stops being fresh, so it never answers longer than the dict
 * would; stale answers (store failures) still come from the dict alone.
 */
const RECENT_ITEMS = 10000;

let options!: RouterOptions;
let recent: LruCache<string | false> | undefined;
let connectOptions!: MemcachedConnectOptions;
let dict: SharedDict | undefined;
let ttl = 0;
let storeRetryAt = 0;
let nextWarnAt = 0;
let fallbacksSinceWarn = 0;

export function installLookups(parsed: RouterOptions, zone: SharedDict | undefined): void {
  options = parsed;
  // Built once here, not per request: cosocket connect options for the pool.
  connectOptions = { pool_size: parsed.memcached.pool_size };
  dict = zone;
  // Only beside the dict: without one, nothing is cached (the conf asked for none).
  recent = zone === undefined ? undefined : (lrucache.new(RECENT_ITEMS)[0] as LruCache<string | false>);
  ttl = parsed.cache_ttl_ms / 1000;
  storeRetryAt = 0;
}

/** A per-IP key lookup failed (the rules timer counts its own failures as "refresh"). */
function storeFailed(reason: string, now: number): void {
  storeRetryAt = now + STORE_RETRY_S;
  count(STORE_ERROR_COUNTER.lookup, 1);
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

/**
 * A cached answer is fresh until the millisecond in its 32-bit flags (ngx.now() in ms, mod 2^32),
 * and then kept STALE_KEEP_S more, answering only while the store fails. The dict's own expiry
 * cannot serve both: nginx deletes expired entries whenever a set() needs room, so get_stale()
 * finds nothing once another key has been written.
 */
const STALE_KEEP_S = 60;
const WRAP_MS = 4294967296;

function nowMs32(now: number): number {
  return Math.floor(now * 1000) % WRAP_MS;
}

/** How many ms expires is later than now (≤ 0: not fresh), read on the 32-bit clock: a difference past half the wrap is the other way round. */
function freshForMs(expires: number | undefined, now: number): number {
  if (expires === undefined) return 0;
  const ahead = expires - nowMs32(now);
  if (ahead > WRAP_MS / 2) return ahead - WRAP_MS;
  if (ahead < -WRAP_MS / 2) return ahead + WRAP_MS;
  return ahead;
}

/** A fresh answer: counted as a cache hit, the absent marker (false) as undefined. */
function hit(value: string | false): string | undefined {
  count(STORE_COUNTER.hits, 1);
  return value === false ? undefined : value;
}

/** The answer without the store: a stale cached one, else absent. */
function fallbackFlag(stale: string | number | boolean | undefined): string | undefined {
  fallback();
  return typeof stale === "string" ? stale : undefined;
}

function flag(key: string): string | undefined {
  if (recent !== undefined) {
    const [known] = recent.get(key);
    if (known !== undefined) return hit(known);
  }
  const now = ngx_now();
  let cached: string | number | boolean | undefined;
  if (dict !== undefined) {
    const [value, expires] = dict.get(key);
    if (value !== undefined) {
      const freshMs = freshForMs(expires, now);
      if (freshMs > 0) {
        const known = typeof value === "string" ? value : false;
        recent?.set(key, known, freshMs / 1000);
        return hit(known);
      }
    }
    cached = value;
  }
  if (resting(now)) return fallbackFlag(cached);
  const [value, failure] = fetchFlag(options.memcached, connectOptions, key);
  if (failure !== undefined) {
    storeFailed(failure, now);
    return fallbackFlag(cached);
  }
  count(STORE_COUNTER.misses, 1);
  // false marks "absent" (negative caching); a full zone evicts its least recently used entries.
  if (dict !== undefined) {
    // flags 0 reads back as no flags: such an entry is simply stale a millisecond early.
    const [, , forcible] = dict.set(key, value ?? false, ttl + STALE_KEEP_S, nowMs32(now + ttl));
    if (forcible) count(EVICTION_COUNTER, 1);
    recent?.set(key, value ?? false, ttl);
  }
  return value;
}

export const lookups: Lookups = { flag, now: ngx.time, hash: ngx.crc32_short };
