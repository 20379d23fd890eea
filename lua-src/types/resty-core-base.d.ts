/** lua-resty-core's base module, for the one function the router needs from it. */
declare module "resty.core.base" {
  /** The current request (a lightuserdata): a table key that stays the same across ngx.exec. */
  export function get_request(this: void): object | undefined;
}
