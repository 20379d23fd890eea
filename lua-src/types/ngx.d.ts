/**
 * The parts of lua-nginx-module's API the router calls, and nothing else
 * (https://github.com/openresty/lua-nginx-module#nginx-api-for-lua).
 */

/** @noSelf */
interface NgxApi {
  /** nginx variables; reading one costs a lookup, so read each once per request. */
  readonly var: Record<string, string | undefined>;
  /** Response headers of the current request. */
  readonly header: Record<string, string | undefined>;
  readonly WARN: number;
  readonly ERR: number;
  /** Internal redirect to a URI or a named location; ends the current handler. */
  exec(this: void, uri: string): void;
  /** Cached time of the event loop, in seconds with millisecond precision (no syscall). */
  now(this: void): number;
  log(this: void, level: number, ...message: (string | number)[]): void;
}

declare const ngx: NgxApi;
