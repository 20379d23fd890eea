/**
 * The parts of lua-nginx-module's API the router calls, and nothing else
 * (https://github.com/openresty/lua-nginx-module#nginx-api-for-lua).
 */

/** A lua_shared_dict: methods are colon-called (an explicit `this` overrides noImplicitSelf). */
interface SharedDict {
  /** The value (undefined when absent or expired) and the entry's 32-bit user flags (undefined when 0). */
  get(this: SharedDict, key: string): LuaMultiReturn<[string | number | boolean | undefined, number | undefined]>;
  /**
   * Stores, evicting least recently used entries when the zone is full (the third value: forcible).
   * exptime in seconds, 0 = never; flags: a 32-bit number get() returns with the value.
   */
  set(
    this: SharedDict,
    key: string,
    value: string | number | boolean,
    exptime?: number,
    flags?: number,
  ): LuaMultiReturn<[boolean, string | undefined, boolean]>;
  /** Stores only when there is room, evicting nothing: (false, "no memory") otherwise. */
  safe_set(
    this: SharedDict,
    key: string,
    value: string | number | boolean,
    exptime?: number,
  ): LuaMultiReturn<[boolean, string | undefined]>;
  /** Stores only when the key is absent: (false, "exists") otherwise. A lock, with an expiry. */
  add(
    this: SharedDict,
    key: string,
    value: string | number | boolean,
    exptime?: number,
  ): LuaMultiReturn<[boolean, string | undefined]>;
  delete(this: SharedDict, key: string): void;
  /** Adds n, creating the key with init when absent. */
  incr(
    this: SharedDict,
    key: string,
    n: number,
    init?: number,
  ): LuaMultiReturn<[number | undefined, string | undefined]>;
}

/** @noSelf */
interface NgxTimer {
  /** Runs callback every `delay` seconds until the worker exits (then once more with premature = true). */
  every(delay: number, callback: (premature: boolean) => void): LuaMultiReturn<[1] | [undefined, string]>;
  /** Runs callback once, `delay` seconds from now (premature = true when the worker exits first). */
  at(delay: number, callback: (premature: boolean) => void): LuaMultiReturn<[1] | [undefined, string]>;
}

/** @noSelf */
interface NgxWorker {
  pid(): number;
}

/** @noSelf */
interface NgxApi {
  /** nginx variables; reading one costs a lookup, so read each once per request. */
  readonly var: Record<string, string | undefined>;
  /** Response headers of the current request. */
  readonly header: Record<string, string | undefined>;
  /** lua_shared_dict zones by name. */
  readonly shared: Record<string, SharedDict | undefined>;
  readonly timer: NgxTimer;
  readonly worker: NgxWorker;
  /** The response status (readable in the log phase). */
  status: number;
  readonly WARN: number;
  readonly ERR: number;
  readonly NOTICE: number;
  /** Internal redirect to a URI or a named location; ends the current handler. */
  exec(this: void, uri: string): void;
  /** Cached time of the event loop, in seconds with millisecond precision (no syscall). */
  now(this: void): number;
  log(this: void, level: number, ...message: (string | number)[]): void;
  /** CRC-32 (zlib's) of a string, computed in C. */
  crc32_short(this: void, s: string): number;
  /** HMAC-SHA1 of the text under the key, as 20 raw bytes. */
  hmac_sha1(this: void, key: string, text: string): string;
  encode_base64(this: void, bytes: string): string;
  /** The same, tuned for long strings. */
  crc32_long(this: void, s: string): number;
  /** Cached Unix time in whole seconds (no syscall). */
  time(this: void): number;
  /** Yields for `seconds` (0: to whatever else is ready); cosocket contexts only (requests, timers). */
  sleep(this: void, seconds: number): void;
  /** The phase running: "init", "init_worker", "access", "timer", … */
  get_phase(this: void): string;
  /** Writes to the response body. */
  print(this: void, ...parts: string[]): void;
}

declare const ngx: NgxApi;
