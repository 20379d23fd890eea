/**
 * lua-resty-memcached as the router uses it (https://github.com/openresty/lua-resty-memcached).
 * Methods are colon-called on the module and on the client, so no @noSelf here.
 */

/** @noSelf */
type KeyTransform = (key: string) => string;

interface MemcachedNewOptions {
  /** { escape, unescape }: by default keys are URI-escaped, which would turn "2001:db8::1" into "2001%3Adb8%3A%3A1". */
  key_transform?: [KeyTransform, KeyTransform];
}

interface MemcachedConnectOptions {
  pool_size?: number;
  /** The connection pool's name (default "host:port"). */
  pool?: string;
}

/** The cosocket under a client: only its TLS handshake is called directly. */
interface MemcachedSocket {
  /**
   * TLS on the connected socket (lua-nginx-module's tcpsock:sslhandshake): a session (or nil), or
   * (nil, err). May raise: see store.ts's secure().
   */
  sslhandshake(
    reused_session: undefined,
    server_name: string,
    ssl_verify: boolean,
  ): LuaMultiReturn<[unknown, undefined] | [undefined, string]>;
}

interface MemcachedClient {
  /** The library keeps its cosocket here in every release (v0.13, Debian's, included). */
  sock: MemcachedSocket;
  /** Connect, send and read timeout at once, in ms (the only timeout setter in v0.13, Debian's). */
  set_timeout(timeout_ms: number): LuaMultiReturn<[1] | [undefined, string]>;
  connect(host: string, port: number, options?: MemcachedConnectOptions): LuaMultiReturn<[1] | [undefined, string]>;
  /** A miss is (nil, nil, nil); a failure is (nil, nil, err). */
  get(key: string): LuaMultiReturn<[string, number, undefined] | [undefined, undefined, string | undefined]>;
  /** Multi-get: present keys map to { value, flags }; a failure is (nil, err). */
  get(keys: string[]): LuaMultiReturn<[LuaTable<string, [string, string]>, undefined] | [undefined, string]>;
  /** Storage commands: (1) when stored, (nil, "NOT_STORED" or a failure) otherwise. */
  set(key: string, value: string, exptime?: number, flags?: number): LuaMultiReturn<[1] | [undefined, string]>;
  add(key: string, value: string, exptime?: number, flags?: number): LuaMultiReturn<[1] | [undefined, string]>;
  /** The value and its compare-and-swap token; a miss or a failure has no value (the failure's position varies). */
  gets(key: string): LuaMultiReturn<[string | undefined, unknown, string | undefined, string | undefined]>;
  /** (1) when swapped, (nil, "EXISTS" | "NOT_FOUND" | a failure) otherwise. */
  cas(key: string, value: string, cas_unique: string, exptime?: number): LuaMultiReturn<[1] | [undefined, string]>;
  /** (1) when the key was there, (nil, "NOT_FOUND") when not, (nil, failure) otherwise. */
  touch(key: string, exptime: number): LuaMultiReturn<[1] | [undefined, string]>;
  /** How many times this connection was taken from the pool before (0: it was just made). */
  get_reused_times(): LuaMultiReturn<[number] | [undefined, string]>;
  set_keepalive(max_idle_ms: number, pool_size: number): LuaMultiReturn<[1] | [undefined, string]>;
  close(): LuaMultiReturn<[1] | [undefined, string]>;
}

interface MemcachedModule {
  "new"(options?: MemcachedNewOptions): LuaMultiReturn<[MemcachedClient] | [undefined, string]>;
}
