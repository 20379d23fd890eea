/**
 * gray.router: sends each request to the canary or the stable location by a flag in memcached.
 *
 *   init_by_lua_block { require("gray.router").configure({ memcached = { host = "127.0.0.1", port = 11211 } }) }
 *   location / { access_by_lua_block { require("gray.router").route() } }
 */
import { clientIp } from "./client_ip.ts";
import { type RouterOptions, parseOptions } from "./options.ts";
import { fetchFlag } from "./store.ts";

const ngx_var = ngx.var;
const ngx_header = ngx.header;
const ngx_exec = ngx.exec;
const ngx_now = ngx.now;
const ngx_log = ngx.log;
const ngx_WARN = ngx.WARN;

/** After a store failure, route to stable without asking for this long: a dead or stalled store costs one timeout per worker per interval, not one per request. */
const STORE_RETRY_S = 0.2;
/** At most one warning per worker per this many seconds, however many requests fall back. */
const WARN_INTERVAL_S = 5;

let options!: RouterOptions;
let connectOptions!: MemcachedConnectOptions;
let storeRetryAt = 0;
let nextWarnAt = 0;
let fallbacksSinceWarn = 0;

function install(parsed: RouterOptions): void {
  options = parsed;
  // Built once here, not per request: cosocket connect options for the pool.
  connectOptions = { pool_size: parsed.memcached.pool_size };
  storeRetryAt = 0;
}

// Without configure(), the seed's defaults: memcached on 127.0.0.1:11211.
install(parseOptions(undefined) as RouterOptions);

/**
 * Validates and installs the options. Call it from init_by_lua*: a bad option raises an error
 * naming it, so nginx refuses to start and a reload with it is rejected.
 */
export function configure(input?: unknown): void {
  const parsed = parseOptions(input);
  if (typeof parsed === "string") error(parsed, 2);
  install(parsed);
}

function noteStoreFailure(reason: string, now: number): void {
  storeRetryAt = now + STORE_RETRY_S;
  fallbacksSinceWarn++;
  if (now < nextWarnAt) return;
  nextWarnAt = now + WARN_INTERVAL_S;
  const mc = options.memcached;
  ngx_log(ngx_WARN, "gray.router: memcached ", mc.host, ":", mc.port, " failed (", reason, "); ",
    fallbacksSinceWarn, " request(s) routed to stable since the last warning");
  fallbacksSinceWarn = 0;
}

/** Decides the route: memcached says canary_value for the client's IP → canary, anything else → stable. */
function isCanary(): boolean {
  const now = ngx_now();
  if (now < storeRetryAt) {
    fallbacksSinceWarn++;
    return false;
  }
  const trusted = options.trusted_proxies;
  const remoteAddr = ngx_var.remote_addr!;
  const ip = trusted.length === 0
    ? remoteAddr
    : clientIp(remoteAddr, ngx_var.http_x_real_ip, ngx_var.http_x_forwarded_for, trusted);
  const [value, failure] = fetchFlag(options.memcached, connectOptions, options.key_prefix + ip);
  if (failure !== undefined) {
    noteStoreFailure(failure, now);
    return false;
  }
  return value === options.canary_value;
}

/** The access handler: ends the phase with an internal redirect to the chosen location. */
export function route(): void {
  const canary = isCanary();
  const header = options.debug_header;
  if (header !== undefined) ngx_header[header] = canary ? "canary" : "stable";
  ngx_exec(canary ? options.canary_location : options.stable_location);
}
