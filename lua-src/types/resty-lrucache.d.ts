/**
 * lua-resty-lrucache (https://github.com/openresty/lua-resty-lrucache), which lua-resty-core
 * requires, so it is wherever the router runs. Methods are colon-called.
 */
interface LruCache<V> {
  /** The value while it lives; (undefined, the expired value) after its ttl; undefined when never set or evicted. */
  get(key: string): LuaMultiReturn<[V | undefined, V | undefined]>;
  /** Sets the value for ttl seconds (forever without one), evicting the least recently used item when full. */
  set(key: string, value: V, ttl?: number): void;
}

declare module "resty.lrucache" {
  /** A cache of at most size items (its slots allocated at once), or (undefined, why). */
  function create(this: void, size: number): LuaMultiReturn<[LruCache<unknown>] | [undefined, string]>;
  export { create as new };
}
