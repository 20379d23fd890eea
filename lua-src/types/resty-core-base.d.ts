/** lua-resty-core's base module, for the one function the router needs from it. */
declare module "resty.core.base" {
  /** The current request's pointer (a cdata, a new one per call on OpenResty's LuaJIT), or undefined outside a request. */
  export function get_request(this: void): object | undefined;
}

/** LuaJIT's FFI, for the one conversion the router needs. */
declare module "ffi" {
  /** ffi.typeof: a ctype parsed once, for casts on the request path. */
  function ctypeOf(this: void, ctype: string): object;
  export { ctypeOf as typeof };
  export function cast(this: void, ctype: object, value: unknown): unknown;
}
