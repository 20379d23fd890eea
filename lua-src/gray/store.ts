/**
 * The flag store: one memcached get over a pooled cosocket, bounded by the configured timeout.
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

/**
 * The value stored under key: a string, or undefined on a miss.
 * A failure returns its message as the second value; the connection is closed, not pooled.
 */
export function fetchFlag(
  options: MemcachedOptions,
  connect: MemcachedConnectOptions,
  key: string,
): LuaMultiReturn<[string | undefined, string | undefined]> {
  const [client, newError] = memcached.new(CLIENT_OPTIONS);
  if (client === undefined) return $multi(undefined, newError);
  client.set_timeout(options.timeout_ms);
  const [connected, connectError] = client.connect(options.host, options.port, connect);
  if (connected === undefined) return $multi(undefined, `connect: ${connectError}`);
  const [value, , getError] = client.get(key);
  if (getError !== undefined) {
    client.close();
    return $multi(undefined, `get: ${getError}`);
  }
  client.set_keepalive(options.keepalive_ms, options.pool_size);
  return $multi(value, undefined);
}
