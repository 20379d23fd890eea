/**
 * The store: memcached gets over a pooled cosocket, bounded by the configured timeout.
 * A failure returns its message; the connection is then closed, never pooled half-read.
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

function open(options: MemcachedOptions, connect: MemcachedConnectOptions): LuaMultiReturn<[MemcachedClient | undefined, string | undefined]> {
  const [client, newError] = memcached.new(CLIENT_OPTIONS);
  if (client === undefined) return $multi(undefined, newError);
  client.set_timeout(options.timeout_ms);
  const [connected, connectError] = client.connect(options.host, options.port, connect);
  if (connected === undefined) return $multi(undefined, `connect: ${connectError}`);
  return $multi(client, undefined);
}

/** The value stored under key: a string, or undefined on a miss; a failure is the second value. */
export function fetchFlag(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
  key: string,
): LuaMultiReturn<[string | undefined, string | undefined]> {
  const [client, openError] = open(options, connect);
  if (client === undefined) return $multi(undefined, openError);
  const [value, , getError] = client.get(key);
  if (getError !== undefined) {
    client.close();
    return $multi(undefined, `get: ${getError}`);
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
  const [found, getError] = client.get(keys);
  if (found === undefined) {
    client.close();
    return $multi(undefined, `get: ${getError}`);
  }
  client.set_keepalive(options.keepalive_ms, options.pool_size);
  const values = new LuaTable<string, string>();
  for (const [key, [value]] of found) values.set(key, value);
  return $multi(values, undefined);
}
