/**
 * The router's options: defaults and validation, done once in configure() so the request path
 * checks nothing. Pure: the CLI validates with the same code.
 */
import { type Cidr, parseCidr } from "./ip.ts";
import { DEFAULT_CANARY, isCanaryName } from "./document.ts";
import { MAX_USER_ID_BYTES, type RuleOptions, USER_KEY } from "./rules.ts";
import { alnumOr } from "./text.ts";

/** A user and password for memcached's text-protocol authentication (`memcached -Y`). */
export interface Credentials {
  user: string;
  password: string;
}

export interface MemcachedOptions {
  host: string;
  port: number;
  timeout_ms: number;
  pool_size: number;
  keepalive_ms: number;
  /** A file in memcached's own -Y format (user:password), read once by configure(). */
  auth_file: string | undefined;
  /** What configure() read from auth_file: sent on each new connection, never logged or shown. */
  credentials: Credentials | undefined;
  /** TLS to memcached (its -Z): a handshake on each new connection, pooled connections reuse it. */
  tls: TlsOptions | undefined;
}

export interface TlsOptions {
  /** Sent as SNI and checked against the certificate (with verify); the host by default. */
  server_name: string;
  /** Verify memcached's certificate against lua_ssl_trusted_certificate (on unless turned off). */
  verify: boolean;
}

export interface CacheOptions {
  /** The lua_shared_dict holding cached lookups and the counters. */
  dict: string;
  /** Given explicitly: then a missing dict is an error, not "run uncached". */
  required: boolean;
}

/** Where a canary's requests go: its named location (route()) and its upstream {} block (route_upstream()). */
export interface CanaryTargets {
  location: string;
  upstream: string;
}

export interface RouterOptions extends RuleOptions {
  memcached: MemcachedOptions;
  stable_location: string;
  canary_location: string;
  /** upstream {} blocks route_upstream() names in $gray_upstream. */
  stable_upstream: string;
  canary_upstream: string;
  trusted_proxies: Cidr[];
  debug_header: string | undefined;
  /** Canary ranges from the configuration; `<prefix>gray:ranges` adds to them live. */
  ranges: Cidr[];
  /** The weight (percent) while `<prefix>gray:weight` is absent. */
  weight: number;
  /** undefined when cache_dict = false. */
  cache: CacheOptions | undefined;
  /** How long a per-IP key lookup is reused, and how often each worker checks for a new rules revision. */
  cache_ttl_ms: number;
  /** Every canary this router can send to, by name: the default one (canary_location, canary_upstream) and `canaries`. */
  canaries: Record<string, CanaryTargets>;
  /** A rules document larger than this is refused (the last revision is kept). */
  max_rules_bytes: number;
  /** A file holding the key rules revisions are signed with: only revisions that verify are adopted. */
  rules_key_file: string | undefined;
  /** What configure() read from rules_key_file; never logged or shown. */
  rules_key: string | undefined;
}

export const DEFAULT_CACHE_DICT = "gray_cache";
export const DEFAULT_MAX_RULES_BYTES = 64 * 1024 * 1024;

/** memcached's limit on a key; the longest address text nginx prints is 45 bytes. */
export const MAX_KEY_BYTES = 250;
export const MAX_KEY_PREFIX_BYTES = MAX_KEY_BYTES - 45;
/** With a user rule, `<prefix>uid:<id>` must fit too. */
export const MAX_USER_KEY_PREFIX_BYTES = MAX_KEY_BYTES - USER_KEY.length - MAX_USER_ID_BYTES;

type Raw = Record<string, unknown>;
type Check<T> = (value: unknown) => T | undefined;

function isTable(value: unknown): value is Raw {
  return typeof value === "object" && value !== null;
}

function isInteger(value: unknown, min: number, max: number): value is number {
  return typeof value === "number" && Math.floor(value) === value && value >= min && value <= max;
}

/** No space, no control character: what memcached refuses in a key (and what would split a command). */
function isKeySafe(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c === 127) return false;
  }
  return true;
}

/**
 * What is wrong with a key_prefix, or undefined when it is good; with a user rule, `<prefix>uid:<id>`
 * must fit in a key too. Counts bytes as Lua does: the CLI passes its text as one char per byte.
 */
export function checkKeyPrefix(prefix: unknown, userRule: boolean): string | undefined {
  if (typeof prefix !== "string" || prefix.length > MAX_KEY_PREFIX_BYTES || !isKeySafe(prefix)) {
    return `a string of at most ${MAX_KEY_PREFIX_BYTES} bytes without spaces or control characters`;
  }
  if (userRule && prefix.length > MAX_USER_KEY_PREFIX_BYTES)
    return `at most ${MAX_USER_KEY_PREFIX_BYTES} bytes when user_header or user_cookie is set`;
  return undefined;
}

/**
 * The first credentials of a file in memcached's -Y format ("user:password" lines), or what is
 * wrong with it. The CLI reads --auth-file with the same code. The password is never in a message.
 */
export function parseAuthFile(text: string): Credentials | string {
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    let line = text.substring(start, end);
    if (line.length > 0 && line.charCodeAt(line.length - 1) === 13) line = line.substring(0, line.length - 1);
    start = end + 1;
    if (line.length === 0) continue;
    const colon = line.indexOf(":");
    const user = colon < 0 ? "" : line.substring(0, colon);
    const password = colon < 0 ? "" : line.substring(colon + 1);
    if (user.length === 0 || password.length === 0 || !isKeySafe(user) || !isKeySafe(password))
      return "its first line must be user:password (no spaces or control characters), as memcached -Y reads it";
    return { user, password };
  }
  return "it has no user:password line";
}

/** A rules key shorter than this is refused: an HMAC key is only as strong as its bytes. */
export const MIN_RULES_KEY_BYTES = 16;

/** The key in a rules key file (its text, trailing newlines dropped), or what is wrong with it. */
export function parseKeyFile(text: string): string | { error: string } {
  let end = text.length;
  while (end > 0 && (text.charCodeAt(end - 1) === 10 || text.charCodeAt(end - 1) === 13)) end--;
  const key = text.substring(0, end);
  if (key.length < MIN_RULES_KEY_BYTES) return { error: `it must hold a key of at least ${MIN_RULES_KEY_BYTES} bytes` };
  return key;
}

/** What is wrong with a canary_value, or undefined when it is good: CR or LF would break memcached's text protocol. */
export function checkCanaryValue(value: unknown): string | undefined {
  if (typeof value !== "string" || value.length === 0 || value.indexOf("\r") >= 0 || value.indexOf("\n") >= 0) {
    return "a non-empty string without CR or LF";
  }
  return undefined;
}

/** An HTTP header name (RFC 9110 token). */
function isToken(s: string): boolean {
  return s.length > 0 && alnumOr(s, "!#$%&'*+-.^_`|~");
}

function describe(value: unknown): string {
  return typeof value === "string" ? `"${value}"` : `${typeof value} ${String(value)}`;
}

function invalid(name: string, expected: string, value: unknown): string {
  return `gray.router: option ${name} must be ${expected} (got ${describe(value)})`;
}

function unknownKeys(raw: Raw, known: Record<string, boolean>, parent: string): string | undefined {
  for (const key in raw) {
    if (known[key] !== true) return `gray.router: unknown option ${parent}${String(key)}`;
  }
  return undefined;
}

const MEMCACHED_KEYS: Record<string, boolean> = {
  host: true,
  port: true,
  timeout_ms: true,
  pool_size: true,
  keepalive_ms: true,
  auth_file: true,
  tls: true,
  server_name: true,
  tls_verify: true,
};
const ROUTER_KEYS: Record<string, boolean> = {
  memcached: true,
  key_prefix: true,
  stable_location: true,
  canary_location: true,
  stable_upstream: true,
  canary_upstream: true,
  canary_value: true,
  trusted_proxies: true,
  debug_header: true,
  override_header: true,
  override_cookie: true,
  user_header: true,
  user_cookie: true,
  ranges: true,
  weight: true,
  cache_dict: true,
  cache_ttl_ms: true,
  ip_keys: true,
  canaries: true,
  max_rules_bytes: true,
  rules_key_file: true,
};
const CANARY_KEYS: Record<string, boolean> = { location: true, upstream: true };

const hostName: Check<string> = (v) => (typeof v === "string" && v.length > 0 && isKeySafe(v) ? v : undefined);
const location: Check<string> = (v) =>
  typeof v === "string" && v.length > 1 && (v.charAt(0) === "@" || v.charAt(0) === "/") && isKeySafe(v) ? v : undefined;

/**
 * The name of an upstream {} block, as `proxy_pass http://$gray_upstream` takes it: a host name
 * (letters, digits, '.', '-', '_'), so no value can smuggle a scheme, a path or a port into the URL.
 */
const upstreamName: Check<string> = (v) =>
  typeof v === "string" && v.length > 0 && v.length <= 255 && alnumOr(v, ".-_") ? v : undefined;

/** A Lua table with named keys, or with holes, is not a list: refuse it rather than guess. */
function asList(value: unknown): unknown[] | undefined {
  if (!isTable(value)) return undefined;
  let entries = 0;
  for (const _ in value) entries++;
  const list = value as unknown as unknown[];
  return entries === list.length ? list : undefined;
}

/** A list of CIDRs, or the message naming the first bad entry. */
function cidrList(name: string, value: unknown): Cidr[] | string {
  const list = value === undefined ? [] : asList(value);
  if (list === undefined) return invalid(name, "a list of CIDRs", value);
  const out: Cidr[] = [];
  for (let i = 0; i < list.length; i++) {
    const item = list[i];
    const cidr = typeof item === "string" ? parseCidr(item) : undefined;
    if (cidr === undefined) return invalid(`${name}[${i + 1}]`, "an IPv4 or IPv6 address or CIDR", item);
    out.push(cidr);
  }
  return out;
}

/** An optional header or cookie name: undefined when not given, false when bad. */
function optionalToken(value: unknown): string | undefined | false {
  if (value === undefined) return undefined;
  return typeof value === "string" && isToken(value) ? value : false;
}

/** The `canaries` table (name → { location, upstream }) with the default canary added, or the message naming what is wrong. */
function canaryTable(value: unknown, defaults: CanaryTargets): Record<string, CanaryTargets> | string {
  const out: Record<string, CanaryTargets> = {};
  out[DEFAULT_CANARY] = defaults;
  if (value === undefined) return out;
  if (!isTable(value)) return invalid("canaries", "a table of name = { location = ..., upstream = ... }", value);
  for (const name in value) {
    const where = `canaries.${String(name)}`;
    if (typeof name !== "string" || !isCanaryName(name) || name === DEFAULT_CANARY)
      return invalid(
        "canaries",
        `keyed by names of 1-32 lowercase letters, digits, - and _ (not "stable"; "${DEFAULT_CANARY}" is set by canary_location and canary_upstream)`,
        name,
      );
    const entry = value[name];
    if (!isTable(entry)) return invalid(where, "a table { location = ..., upstream = ... }", entry);
    const bad = unknownKeys(entry, CANARY_KEYS, `${where}.`);
    if (bad !== undefined) return bad;
    const loc = entry.location === undefined ? "@" + name : location(entry.location);
    if (loc === undefined)
      return invalid(`${where}.location`, "a named location (@name) or a URI (/path)", entry.location);
    const upstream = entry.upstream === undefined ? name : upstreamName(entry.upstream);
    if (upstream === undefined)
      return invalid(`${where}.upstream`, "the name of an upstream {} block (letters, digits, . - _)", entry.upstream);
    out[name] = { location: loc, upstream };
  }
  return out;
}

/** Turns what the user wrote into options, or returns the message that names the first bad one. */
/** memcached.tls, server_name and tls_verify: the last two mean nothing without the first, so they require it. */
function parseTls(mc: Raw, host: string): TlsOptions | undefined | string {
  const on = mc.tls === undefined ? false : mc.tls;
  if (typeof on !== "boolean") return invalid("memcached.tls", "true or false", on);
  const verify = mc.tls_verify === undefined ? true : mc.tls_verify;
  if (typeof verify !== "boolean") return invalid("memcached.tls_verify", "true or false", verify);
  const name = mc.server_name === undefined ? host : hostName(mc.server_name);
  if (name === undefined) return invalid("memcached.server_name", "a non-empty string without spaces", mc.server_name);
  if (!on && (mc.server_name !== undefined || mc.tls_verify !== undefined))
    return `gray.router: option memcached.${mc.server_name !== undefined ? "server_name" : "tls_verify"} needs memcached.tls = true`;
  return on ? { server_name: name, verify } : undefined;
}

export function parseOptions(input: unknown): RouterOptions | string {
  const raw: Raw = input === undefined ? {} : (input as Raw);
  if (!isTable(input) && input !== undefined) return invalid("(the argument of configure)", "a table", input);
  const bad = unknownKeys(raw, ROUTER_KEYS, "");
  if (bad !== undefined) return bad;
  const mc: Raw = raw.memcached === undefined ? {} : (raw.memcached as Raw);
  if (!isTable(raw.memcached) && raw.memcached !== undefined) return invalid("memcached", "a table", raw.memcached);
  const badMc = unknownKeys(mc, MEMCACHED_KEYS, "memcached.");
  if (badMc !== undefined) return badMc;

  const host = mc.host === undefined ? "127.0.0.1" : hostName(mc.host);
  if (host === undefined) return invalid("memcached.host", "a non-empty string without spaces", mc.host);
  const port = mc.port === undefined ? 11211 : mc.port;
  if (!isInteger(port, 1, 65535)) return invalid("memcached.port", "an integer in 1..65535", port);
  const timeout = mc.timeout_ms === undefined ? 50 : mc.timeout_ms;
  if (!isInteger(timeout, 1, 60000)) return invalid("memcached.timeout_ms", "an integer in 1..60000", timeout);
  const poolSize = mc.pool_size === undefined ? 32 : mc.pool_size;
  if (!isInteger(poolSize, 1, 10000)) return invalid("memcached.pool_size", "an integer in 1..10000", poolSize);
  const keepalive = mc.keepalive_ms === undefined ? 60000 : mc.keepalive_ms;
  if (!isInteger(keepalive, 1, 86400000))
    return invalid("memcached.keepalive_ms", "an integer in 1..86400000", keepalive);
  const authFile = mc.auth_file;
  if (authFile !== undefined && (typeof authFile !== "string" || authFile.length === 0 || !isKeySafe(authFile)))
    return invalid("memcached.auth_file", "the path of a file in memcached's -Y format (user:password)", authFile);
  const tls = parseTls(mc, host);
  if (typeof tls === "string") return tls;

  const prefix = raw.key_prefix === undefined ? "" : raw.key_prefix;
  const badPrefix = checkKeyPrefix(prefix, false);
  if (badPrefix !== undefined || typeof prefix !== "string") return invalid("key_prefix", badPrefix ?? "", prefix);
  const stable = raw.stable_location === undefined ? "@client" : location(raw.stable_location);
  if (stable === undefined)
    return invalid("stable_location", "a named location (@name) or a URI (/path)", raw.stable_location);
  const canary = raw.canary_location === undefined ? "@client_test" : location(raw.canary_location);
  if (canary === undefined)
    return invalid("canary_location", "a named location (@name) or a URI (/path)", raw.canary_location);
  const stableUpstream = raw.stable_upstream === undefined ? "client" : upstreamName(raw.stable_upstream);
  if (stableUpstream === undefined)
    return invalid("stable_upstream", "the name of an upstream {} block (letters, digits, . - _)", raw.stable_upstream);
  const canaryUpstream = raw.canary_upstream === undefined ? "client_test" : upstreamName(raw.canary_upstream);
  if (canaryUpstream === undefined)
    return invalid("canary_upstream", "the name of an upstream {} block (letters, digits, . - _)", raw.canary_upstream);
  const canaryValue = raw.canary_value === undefined ? "1" : raw.canary_value;
  const badValue = checkCanaryValue(canaryValue);
  if (badValue !== undefined || typeof canaryValue !== "string")
    return invalid("canary_value", badValue ?? "", canaryValue);
  const debugHeader = raw.debug_header;
  if (debugHeader !== undefined && (typeof debugHeader !== "string" || !isToken(debugHeader))) {
    return invalid("debug_header", "an HTTP header name", debugHeader);
  }

  const trusted = cidrList("trusted_proxies", raw.trusted_proxies);
  if (typeof trusted === "string") return trusted;
  const ranges = cidrList("ranges", raw.ranges);
  if (typeof ranges === "string") return ranges;
  const weight = raw.weight === undefined ? 0 : raw.weight;
  if (typeof weight !== "number" || !(weight >= 0 && weight <= 100))
    return invalid("weight", "a number in 0..100", weight);

  const names: Record<string, string | undefined> = {};
  for (const name of ["override_header", "override_cookie", "user_header", "user_cookie"]) {
    const value = optionalToken(raw[name]);
    if (value === false)
      return invalid(name, name.endsWith("header") ? "an HTTP header name" : "a cookie name", raw[name]);
    names[name] = value;
  }
  const userRule = names.user_header !== undefined || names.user_cookie !== undefined;
  const badUserPrefix = checkKeyPrefix(prefix, userRule);
  if (badUserPrefix !== undefined) return invalid("key_prefix", badUserPrefix, prefix);

  const dict = raw.cache_dict;
  if (dict !== undefined && dict !== false && (typeof dict !== "string" || !isToken(dict))) {
    return invalid("cache_dict", "the name of a lua_shared_dict, or false", dict);
  }
  const ttl = raw.cache_ttl_ms === undefined ? 500 : raw.cache_ttl_ms;
  if (!isInteger(ttl, 1, 60000)) return invalid("cache_ttl_ms", "an integer in 1..60000", ttl);
  const ipKeys = raw.ip_keys === undefined ? true : raw.ip_keys;
  if (typeof ipKeys !== "boolean") return invalid("ip_keys", "true or false", ipKeys);
  const canaries = canaryTable(raw.canaries, { location: canary, upstream: canaryUpstream });
  if (typeof canaries === "string") return canaries;
  const maxBytes = raw.max_rules_bytes === undefined ? DEFAULT_MAX_RULES_BYTES : raw.max_rules_bytes;
  if (!isInteger(maxBytes, 1024, 1024 * 1024 * 1024))
    return invalid("max_rules_bytes", "an integer in 1024..1073741824", maxBytes);
  const keyFile = raw.rules_key_file;
  if (keyFile !== undefined && (typeof keyFile !== "string" || keyFile.length === 0 || !isKeySafe(keyFile)))
    return invalid("rules_key_file", "the path of a file holding the rules key", keyFile);
  const cache: CacheOptions | undefined =
    dict === false ? undefined : { dict: dict === undefined ? DEFAULT_CACHE_DICT : dict, required: dict !== undefined };

  return {
    memcached: {
      host,
      port,
      timeout_ms: timeout,
      pool_size: poolSize,
      keepalive_ms: keepalive,
      auth_file: authFile,
      credentials: undefined,
      tls,
    },
    key_prefix: prefix,
    stable_location: stable,
    canary_location: canary,
    stable_upstream: stableUpstream,
    canary_upstream: canaryUpstream,
    canary_value: canaryValue,
    trusted_proxies: trusted,
    debug_header: debugHeader,
    override_header: names.override_header,
    override_cookie: names.override_cookie,
    user_header: names.user_header,
    user_cookie: names.user_cookie,
    ranges,
    weight,
    cache,
    cache_ttl_ms: ttl,
    ip_keys: ipKeys,
    canaries,
    max_rules_bytes: maxBytes,
    rules_key_file: keyFile,
    rules_key: undefined,
  };
}
