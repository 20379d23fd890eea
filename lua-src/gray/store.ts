/**
 * The store: memcached gets over a pooled cosocket, bounded by the configured timeout.
 * A failure returns its message; the connection is then closed, never pooled half-read.
 * What the library throws is a failure too: a garbled reply such as "VALUE k 0 99999999999999999999"
 * makes its receive() raise "bad pattern argument", which would otherwise abort the request with a 500.
 */
import type { MemcachedOptions } from "./options.ts";

/** OpenResty ships resty.memcached; Debian ships the same library as nginx.memcached. */
function loadMemcached(): MemcachedModule {
  const [found, module] = pcall(require, "resty.memcached");
  return (found ? module : require("nginx.memcached")) as MemcachedModule;
}

const memcached = loadMemcached();

/** Keys go out exactly as an operator types them in telnet: no URI-escaping of ':' in IPv6 keys. */
const keepKey: KeyTransform = (key) => key;
const CLIENT_OPTIONS: MemcachedNewOptions = { key_transform: [keepKey, keepKey] };

function open(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
): LuaMultiReturn<[MemcachedClient | undefined, string | undefined]> {
  const [client, newError] = memcached.new(CLIENT_OPTIONS);
  if (client === undefined) return $multi(undefined, newError);
  client.set_timeout(options.timeout_ms);
  const [connected, connectError] = client.connect(options.host, options.port, connect);
  if (connected === undefined) return $multi(undefined, `connect: ${connectError}`);
  return $multi(client, undefined);
}

/**
 * pcall for a function returning (result, failure): (true, result, failure), or (false, what it
 * threw). Typed here because lua-types' pcall does not pass multiple results through.
 */
const guarded = pcall as unknown as <A extends unknown[], T>(
  f: (this: void, ...args: A) => LuaMultiReturn<[T | undefined, string | undefined]>,
  ...args: A
) => LuaMultiReturn<[true, T | undefined, string | undefined] | [false, string, undefined]>;

function getOne(
  this: void,
  client: MemcachedClient,
  key: string,
): LuaMultiReturn<[string | undefined, string | undefined]> {
  const [value, , getError] = client.get(key);
  return $multi(value, getError);
}

function getMany(
  this: void,
  client: MemcachedClient,
  keys: string[],
): LuaMultiReturn<[LuaTable<string, [string, string]> | undefined, string | undefined]> {
  return client.get(keys);
}

/** The value stored under key: a string, or undefined on a miss; a failure is the second value. */
export function fetchFlag(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
  key: string,
): LuaMultiReturn<[string | undefined, string | undefined]> {
  const [client, openError] = open(options, connect);
  if (client === undefined) return $multi(undefined, openError);
  const [ran, value, getError] = guarded(getOne, client, key);
  if (!ran || getError !== undefined) {
    client.close();
    return $multi(undefined, `get: ${ran ? getError : value}`);
  }
  client.set_keepalive(options.keepalive_ms, options.pool_size);
  return $multi(value, undefined);
}

/** Several keys in one round trip: a table from each present key to its value. */
export function fetchMany(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
  keys: string[],
): LuaMultiReturn<[LuaTable<string, string> | undefined, string | undefined]> {
  const [client, openError] = open(options, connect);
  if (client === undefined) return $multi(undefined, openError);
  const [ran, found, getError] = guarded(getMany, client, keys);
  if (!ran || found === undefined) {
    client.close();
    return $multi(undefined, `get: ${ran ? getError : found}`);
  }
  client.set_keepalive(options.keepalive_ms, options.pool_size);
  const values = new LuaTable<string, string>();
  for (const [key, [value]] of found) values.set(key, value);
  return $multi(values, undefined);
}
