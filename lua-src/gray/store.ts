/**
 * The store: memcached over a pooled cosocket, each command bounded by the configured timeout.
 * A failure returns its message; the connection is then closed, never pooled half-read.
 * What the library throws is a failure too: a garbled reply such as "VALUE k 0 99999999999999999999"
 * makes its receive() raise "bad pattern argument", which would otherwise abort the request with a 500.
 */
import type { Credentials, MemcachedOptions, TlsOptions } from "./options.ts";
import { printable } from "./text.ts";

/** OpenResty ships resty.memcached; Debian ships the same library as nginx.memcached. */
function loadMemcached(): MemcachedModule {
  const [found, module] = pcall(require, "resty.memcached");
  return (found ? module : require("nginx.memcached")) as MemcachedModule;
}

const memcached = loadMemcached();

/** Keys go out exactly as an operator types them in telnet: no URI-escaping of ':' in IPv6 keys. */
const keepKey: KeyTransform = (key) => key;
const CLIENT_OPTIONS: MemcachedNewOptions = { key_transform: [keepKey, keepKey] };

/** What a session does with the connected client: (result, undefined), or (anything, failure). */
type Work<A extends unknown[], T> = (
  this: void,
  client: MemcachedClient,
  ...args: A
) => LuaMultiReturn<[T | undefined, string | undefined]>;

/**
 * pcall for a Work: (true, result, failure), or (false, what it threw). Typed here because
 * lua-types' pcall does not pass multiple results through.
 */
const guarded = pcall as unknown as <A extends unknown[], T>(
  f: Work<A, T>,
  client: MemcachedClient,
  ...args: A
) => LuaMultiReturn<[true, T | undefined, string | undefined] | [false, string, undefined]>;

/** memcached -Y's text-protocol login: a set whose data is "<user> <password>". */
function login(
  this: void,
  client: MemcachedClient,
  line: string,
): LuaMultiReturn<[boolean | undefined, string | undefined]> {
  const [stored, refusal] = client.set("gray-auth", line);
  if (stored === undefined) return $multi(undefined, refusal);
  return $multi(true, undefined);
}

/** Logs a new connection in (a pooled one is already): what went wrong, or undefined; never the password. */
function authenticate(client: MemcachedClient, credentials: Credentials): string | undefined {
  const [ran, , refusal] = guarded(login, client, `${credentials.user} ${credentials.password}`);
  if (ran && refusal === undefined) return undefined;
  return `authentication failed as user ${credentials.user} (${refusal === undefined ? "the library raised an error" : printable(refusal)})`;
}

/**
 * The TLS handshake: why it failed, or undefined. reused_session is nil, not false: with false,
 * lua-resty-core returns true for a handshake that completed at once (a loopback peer) even when
 * the certificate failed verification (fixed upstream in lua-nginx-module #2506, not in Debian 12's
 * 0.10.23); with nil it checks the result, and raises for that same case (lua-resty-core #499),
 * without OpenSSL's reason. Whether the handshake completes at once depends on timing.
 */
function secure(this: void, sock: MemcachedSocket, tls: TlsOptions): string | undefined {
  const [, failure] = sock.sslhandshake(undefined, tls.server_name, tls.verify);
  return failure;
}

const VERIFY_HINT =
  "lua_ssl_trusted_certificate must name the CA that signed memcached's certificate, and the certificate must carry memcached.server_name";

/**
 * A new connection's TLS handshake and login, in that order; a pooled one has had both. Why it
 * failed, or undefined.
 */
function greet(client: MemcachedClient, options: MemcachedOptions): string | undefined {
  const { tls, credentials } = options;
  if ((tls === undefined && credentials === undefined) || client.get_reused_times()[0] !== 0) return undefined;
  if (tls !== undefined) {
    const [ran, failure] = pcall(secure, client.sock, tls);
    // The raise carries no reason; OpenSSL's own words, so both paths read alike in the log.
    const why = ran ? failure : "certificate verify failed";
    if (why !== undefined)
      return `TLS handshake with ${tls.server_name} failed: ${printable(why)}${tls.verify ? ` (${VERIFY_HINT})` : ""}`;
  }
  return credentials === undefined ? undefined : authenticate(client, credentials);
}

/**
 * Connects (or takes a pooled connection), runs the work, and pools the connection only when it
 * succeeded (into the pool the connect options name, of pool_size connections; without a
 * pool_size the connection is closed afterwards).
 */
function session<A extends unknown[], T>(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
  work: Work<A, T>,
  ...args: A
): LuaMultiReturn<[T | undefined, string | undefined]> {
  const [client, newError] = memcached.new(CLIENT_OPTIONS);
  if (client === undefined) return $multi(undefined, newError);
  client.set_timeout(options.timeout_ms);
  const [connected, connectError] = client.connect(options.host, options.port, connect);
  if (connected === undefined) return $multi(undefined, `connect: ${connectError}`);
  // Its own words, with the store's quoted printable: an operator's hint is never cut.
  const refused = greet(client, options);
  if (refused !== undefined) {
    client.close();
    return $multi(undefined, refused);
  }
  const [ran, result, failure] = guarded(work, client, ...args);
  if (!ran || failure !== undefined) {
    client.close();
    // The store's own words are quoted in warnings: a garbage reply must not reach error.log raw.
    return $multi(undefined, printable(ran ? failure! : `${result}`));
  }
  if (connect.pool_size === undefined) client.close();
  else client.set_keepalive(options.keepalive_ms, connect.pool_size);
  return $multi(result, undefined);
}

function getOne(
  this: void,
  client: MemcachedClient,
  key: string,
): LuaMultiReturn<[string | undefined, string | undefined]> {
  const [value, , getError] = client.get(key);
  return $multi(value, getError === undefined ? undefined : `get: ${getError}`);
}

function getMany(
  this: void,
  client: MemcachedClient,
  keys: string[],
): LuaMultiReturn<[LuaTable<string, string> | undefined, string | undefined]> {
  const [found, getError] = client.get(keys);
  if (found === undefined) return $multi(undefined, `get: ${getError}`);
  const values = new LuaTable<string, string>();
  for (const [key, [value]] of found) values.set(key, value);
  return $multi(values, undefined);
}

/**
 * The `sets` with set, then the `adds` with add (a key someone stored meanwhile is left as it is):
 * true when every add stored.
 */
function writeBack(
  this: void,
  client: MemcachedClient,
  sets: [string, string][],
  adds: [string, string][],
): LuaMultiReturn<[boolean | undefined, string | undefined]> {
  for (const [key, value] of sets) {
    const [stored, setError] = client.set(key, value);
    if (stored === undefined) return $multi(undefined, `set ${key}: ${setError}`);
  }
  let all = true;
  for (const [key, value] of adds) {
    const [added, addError] = client.add(key, value);
    if (added === undefined) {
      if (addError !== "NOT_STORED") return $multi(undefined, `add ${key}: ${addError}`);
      all = false;
    }
  }
  return $multi(all, undefined);
}

/**
 * Each key that still holds `stale` gets `value`, by compare-and-swap: a key someone changed
 * meanwhile (a newer revision written) is left as it is. The number of keys swapped.
 */
function swapStale(
  this: void,
  client: MemcachedClient,
  keys: string[],
  stale: string,
  value: string,
): LuaMultiReturn<[number | undefined, string | undefined]> {
  let swapped = 0;
  for (const key of keys) {
    const [current, , token] = client.gets(key);
    if (current !== stale || token === undefined) continue;
    const [ok, casError] = client.cas(key, value, token);
    if (ok !== undefined) swapped++;
    else if (casError !== "EXISTS" && casError !== "NOT_FOUND") return $multi(undefined, `cas ${key}: ${casError}`);
  }
  return $multi(swapped, undefined);
}

/** Touches each key (which also keeps it warm in memcached's LRU): the keys that were gone. */
function touchAll(
  this: void,
  client: MemcachedClient,
  keys: string[],
): LuaMultiReturn<[string[] | undefined, string | undefined]> {
  const gone: string[] = [];
  for (const key of keys) {
    const [touched, touchError] = client.touch(key, 0);
    if (touched === undefined) {
      if (touchError !== "NOT_FOUND") return $multi(undefined, `touch ${key}: ${touchError}`);
      gone.push(key);
    }
  }
  return $multi(gone, undefined);
}

/** The value stored under key: a string, or undefined on a miss; a failure is the second value. */
export function fetchFlag(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
  key: string,
): LuaMultiReturn<[string | undefined, string | undefined]> {
  return session(options, connect, getOne, key);
}

/** Several keys in one round trip: a table from each present key to its value. */
export function fetchMany(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
  keys: string[],
): LuaMultiReturn<[LuaTable<string, string> | undefined, string | undefined]> {
  return session(options, connect, getMany, keys);
}

export function storeBack(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
  sets: [string, string][],
  adds: [string, string][],
): LuaMultiReturn<[boolean | undefined, string | undefined]> {
  return session(options, connect, writeBack, sets, adds);
}

export function replaceStale(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
  keys: string[],
  stale: string,
  value: string,
): LuaMultiReturn<[number | undefined, string | undefined]> {
  return session(options, connect, swapStale, keys, stale, value);
}

export function touchKeys(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
  keys: string[],
): LuaMultiReturn<[string[] | undefined, string | undefined]> {
  return session(options, connect, touchAll, keys);
}
