/**
 * gray.router: sends each request to the canary or the stable version by rules read live
 * from memcached (override, user id, IP flag, ranges, weight), and counts what it did.
 * Two ways to hand the request on, the same decision behind both:
 *
 *   lua_shared_dict gray_cache 10m;
 *   init_by_lua_block { require("gray.router").configure({ memcached = { host = "127.0.0.1", port = 11211 } }) }
 *   log_by_lua_block { require("gray.router").log() }
 *   -- by variable: no internal redirect (new confs)
 *   location / { set $gray_upstream ""; access_by_lua_block { require("gray.router").route_upstream() }
 *                proxy_pass http://$gray_upstream; }
 *   -- by ngx.exec to @client / @client_test (the original recipe's confs)
 *   location / { access_by_lua_block { require("gray.router").route() } }
 *   location = /gray/status { content_by_lua_block { require("gray.router").status() } }
 */
import { cast, typeof as ctypeOf } from "ffi";
import { get_request } from "resty.core.base";
import { clientIp } from "./client_ip.ts";
import { RULE_COUNTER, count, observe, routeCounter, totals, useDict, useRoutes } from "./counters.ts";
import { BUCKETS, DEFAULT_CANARY, STABLE } from "./document.ts";
import { formatCidr } from "./ip.ts";
import { installLookups, lookups } from "./lookups.ts";
import {
  type Credentials,
  DEFAULT_CACHE_DICT,
  type RouterOptions,
  parseAuthFile,
  parseKeyFile,
  parseOptions,
} from "./options.ts";
import { decide } from "./rules.ts";
import {
  type InForce,
  currentRules,
  documentStatus,
  installRules,
  releaseRead,
  startRules,
  targetOf,
} from "./snapshot.ts";
import {
  type CanaryStatus,
  MAX_RELEASE_BYTES,
  type ReleaseJson,
  type RuleConfig,
  type Status,
  statusJson,
  statusPrometheus,
  sumTimes,
} from "./status.ts";
import { printable } from "./text.ts";

/** The release, as OPM and LuaRocks users read it from the main module (checked against package.json by test/rock.test.ts). */
export const _VERSION = "0.2.0";

const ngx_var = ngx.var;
const ngx_header = ngx.header;
const ngx_exec = ngx.exec;
const ngx_log = ngx.log;

/**
 * Requests routed but not yet logged, by request (ngx.ctx does not survive ngx.exec). Past this
 * many, log() is not attached where route() sends requests: if it has never run in this worker,
 * the conf has no log_by_lua line and counting stops; otherwise the table is dropped. Either way
 * a warning says why.
 */
const MAX_IN_FLIGHT = 100000;

let options!: RouterOptions;
let dict: SharedDict | undefined;
let overrideVar: string | undefined;
let userVar: string | undefined;
let readCookies = false;
let ruleHeader: string | undefined;
let config!: RuleConfig;
/** Routes by request, for log() (the exec pattern). */
let inFlight = new LuaTable<number, string>();
let inFlightCount = 0;
/** log() has run in this worker; until it has, a full in-flight table means it never will. */
let logSeen = false;
/** Requests routed in this worker before log() first ran. */
let unlogged = 0;
let counting = true;

/** Whether $gray_upstream can be written in this worker's conf: unknown until route_upstream() first tries. */
const enum UpstreamVar {
  Unknown,
  Declared,
  Missing,
}
let upstreamVar = UpstreamVar.Unknown;

/** The nginx variable holding a request header: X-Gray-Override → http_x_gray_override. */
function headerVar(name: string | undefined): string | undefined {
  return name === undefined ? undefined : "http_" + string.gsub(string.lower(name), "-", "_")[0];
}

function install(parsed: RouterOptions): void {
  options = parsed;
  dict = parsed.cache === undefined ? undefined : ngx.shared[parsed.cache.dict];
  installLookups(parsed, dict);
  useDict(dict);
  overrideVar = headerVar(parsed.override_header);
  userVar = headerVar(parsed.user_header);
  readCookies = parsed.override_cookie !== undefined || parsed.user_cookie !== undefined;
  ruleHeader = parsed.debug_header === undefined ? undefined : parsed.debug_header + "-Rule";
  installRules(parsed, dict);
  const canaries: RuleConfig["canaries"] = {};
  const routes = [STABLE, DEFAULT_CANARY];
  for (const name in parsed.canaries) {
    if (name === DEFAULT_CANARY) continue;
    canaries[name] = parsed.canaries[name]!;
    routes.push(name);
  }
  useRoutes(routes);
  config = {
    key_prefix: parsed.key_prefix,
    canary_value: parsed.canary_value,
    override_header: parsed.override_header,
    override_cookie: parsed.override_cookie,
    user_header: parsed.user_header,
    user_cookie: parsed.user_cookie,
    ranges: parsed.ranges.map((c) => formatCidr(c)),
    weight: parsed.weight,
    ip_keys: parsed.ip_keys,
    canaries,
  };
}

// Without configure(), the seed's defaults: memcached on 127.0.0.1:11211.
install(parseOptions(undefined) as RouterOptions);

/**
 * Validates and installs the options. Call it from init_by_lua*: a bad option raises an error
 * naming it, so nginx refuses to start and a reload with it is rejected.
 */
export function configure(input?: unknown): void {
  const parsed = parseOptions(input);
  if (typeof parsed === "string") error(parsed, 2);
  const cache = parsed.cache;
  if (cache !== undefined && cache.required && ngx.shared[cache.dict] === undefined) {
    error(
      `gray.router: option cache_dict names "${cache.dict}", but no lua_shared_dict ${cache.dict} is declared (add: lua_shared_dict ${cache.dict} 10m;)`,
      2,
    );
  }
  const authFile = parsed.memcached.auth_file;
  if (authFile !== undefined) parsed.memcached.credentials = readCredentials(authFile);
  const keyFile = parsed.rules_key_file;
  if (keyFile !== undefined) parsed.rules_key = readRulesKey(keyFile);
  install(parsed);
}

/** The whole of a file configure() reads (in the master: it may be readable by root alone); unreadable stops nginx. */
function readOptionFile(option: string, path: string): string {
  const [file, openError] = io.open(path, "r");
  if (file === undefined) error(`gray.router: option ${option}: cannot read ${path} (${openError})`, 4);
  const text = file.read("*a");
  file.close();
  return typeof text === "string" ? text : "";
}

function readRulesKey(path: string): string {
  const key = parseKeyFile(readOptionFile("rules_key_file", path));
  if (typeof key !== "string") error(`gray.router: option rules_key_file: ${path}: ${key.error}`, 3);
  return key;
}

/**
 * memcached.auth_file, read here and only here: configure() runs in init_by_lua, in the master,
 * so the file may be readable by root alone. A file that cannot be read or parsed stops nginx.
 */
function readCredentials(path: string): Credentials {
  const parsed = parseAuthFile(readOptionFile("memcached.auth_file", path));
  if (typeof parsed === "string") error(`gray.router: option memcached.auth_file: ${path}: ${parsed}`, 3);
  return parsed;
}

const UINTPTR = ctypeOf("uintptr_t");

/** The current request as a number: get_request() returns a new cdata per call, which is no use as a table key. */
function requestKey(): number | undefined {
  const request = get_request();
  return request === undefined ? undefined : tonumber(cast(UINTPTR, request));
}

/**
 * Counts requests routed before log() first runs in this worker. Past MAX_IN_FLIGHT the conf has
 * no log_by_lua line: route counting stops, with one warning, and nothing more is remembered.
 */
function logMissing(): boolean {
  if (logSeen) return false;
  unlogged++;
  if (unlogged < MAX_IN_FLIGHT) return false;
  counting = false;
  inFlight = new LuaTable();
  inFlightCount = 0;
  ngx_log(
    ngx.WARN,
    "gray.router: log() never ran in this worker after ",
    MAX_IN_FLIGHT,
    ' routed requests, so route counters are off; add log_by_lua_block { require("gray.router").log() } to the server to count them',
  );
  return true;
}

/**
 * The route, kept for log() by request: ngx.ctx does not survive ngx.exec, and reading
 * $gray_upstream back costs log() a variable lookup by name and a string (and would map the
 * upstream back through rules that may have changed since).
 */
function remember(route: string): void {
  // No counters without the dict, or without log(): nothing to remember for it.
  if (dict === undefined || !counting || logMissing()) return;
  const request = requestKey();
  if (request === undefined) return;
  if (inFlightCount >= MAX_IN_FLIGHT) {
    inFlight = new LuaTable();
    inFlightCount = 0;
    ngx_log(
      ngx.WARN,
      "gray.router: ",
      MAX_IN_FLIGHT,
      ' routed requests were never logged; is log_by_lua_block { require("gray.router").log() } set for the locations route() sends to?',
    );
  }
  // An internal redirect can route the same request twice: count it once.
  if (inFlight.get(request) === undefined) inFlightCount++;
  inFlight.set(request, route);
}

/** The route log() counts a request under, as route() or route_upstream() remembered it. */
function loggedRoute(): string | undefined {
  const request = requestKey();
  if (request === undefined) return undefined;
  const route = inFlight.get(request);
  if (route === undefined) return undefined;
  inFlight.delete(request);
  inFlightCount--;
  return route;
}

/**
 * Optional, from init_worker_by_lua: each worker loads the rules and starts checking them as it
 * starts. Without it a worker starts on its first request (routed, or a /gray/status answer), which
 * then waits for the load, and a worker that has served nothing neither loads nor heals the store.
 */
export function init_worker(): void {
  // In init_by_lua (the master) it could start nothing: no timers there.
  if (ngx.get_phase() === "init")
    error('gray.router: init_worker() belongs in init_worker_by_lua_block { require("gray.router").init_worker() }', 2);
  startRules();
}

/** Decides the request's route ("stable" or a canary's name) by these rules, counts the rule and sets the debug headers. */
function decideRequest(rules: InForce): string {
  const remoteAddr = ngx_var.remote_addr!;
  const ip =
    options.trusted_proxies.length === 0
      ? remoteAddr
      : clientIp(remoteAddr, ngx_var.http_x_real_ip, ngx_var.http_x_forwarded_for, options.trusted_proxies);
  // Plain locals, not expressions in the call: TypeScriptToLua would pass a conditional argument
  // through a table built per request.
  const override = overrideVar === undefined ? undefined : ngx_var[overrideVar];
  const user = userVar === undefined ? undefined : ngx_var[userVar];
  const cookies = readCookies ? ngx_var.http_cookie : undefined;
  const decision = decide(options, lookups, rules.view, ip, override, user, cookies);
  const route = decision.route;
  count(RULE_COUNTER[decision.rule], 1);
  const header = options.debug_header;
  if (header !== undefined) {
    ngx_header[header] = route;
    ngx_header[ruleHeader!] = decision.rule;
  }
  return route;
}

/** The access handler of the ngx.exec pattern: decides, then ends the phase with an internal redirect to the route's location. */
export function route(): void {
  const rules = currentRules();
  const route = decideRequest(rules);
  remember(route);
  ngx_exec(targetOf(rules, route).location);
}

function writeUpstreamVar(this: void, name: string): void {
  ngx_var.gray_upstream = name;
}

/**
 * The access handler of the variable pattern: decides and names the route's upstream {} block in
 * $gray_upstream, for `proxy_pass http://$gray_upstream` in the same location (no internal redirect).
 */
export function route_upstream(): void {
  const rules = currentRules();
  const route = decideRequest(rules);
  const name = targetOf(rules, route).upstream;
  if (upstreamVar === UpstreamVar.Declared) ngx_var.gray_upstream = name;
  else if (upstreamVar === UpstreamVar.Missing) return;
  else {
    // nginx variables are declared per conf, not per location: one try tells for the worker's lifetime.
    const [declared] = pcall(writeUpstreamVar, name);
    upstreamVar = declared ? UpstreamVar.Declared : UpstreamVar.Missing;
    if (!declared) {
      ngx_log(
        ngx.ERR,
        'gray.router: route_upstream() cannot set $gray_upstream, which this conf never declares: add set $gray_upstream ""; and proxy_pass http://$gray_upstream; to the location that calls it (requests go where the location sends them until then)',
      );
      return;
    }
  }
  remember(route);
}

/** The log handler: counts the request under its route (requests, 5xx, upstream time, the latency histogram). */
export function log(): void {
  logSeen = true;
  const route = loggedRoute();
  if (route === undefined) return;
  const counters = routeCounter(route);
  if (counters === undefined) return;
  count(counters.requests, 1);
  if (ngx.status >= 500) count(counters.responses_5xx, 1);
  const times = ngx_var.upstream_response_time;
  if (times !== undefined) {
    // One upstream tried (the usual case) is one number; a list ("0.001, 0.002") is summed.
    const seconds = sumTimes(times);
    count(counters.upstream_seconds, seconds);
    observe(counters, seconds);
  } else {
    // No upstream (answered by nginx itself, or the connect never happened): the request's own time.
    observe(counters, sumTimes(ngx_var.request_time ?? ""));
  }
}

/** A private cjson instance, made on first use (only /gray/status needs one): strict numbers, shallow nesting. */
let cjson: CjsonModule | undefined;
function json(): CjsonModule {
  if (cjson !== undefined) return cjson;
  const instance = (require("cjson") as CjsonModule).new();
  instance.decode_invalid_numbers(false);
  instance.decode_max_depth(32);
  instance.encode_max_depth(32);
  instance.decode_array_with_array_mt?.(true);
  cjson = instance;
  return instance;
}

/** The release key's text as last rendered, and what it rendered to: it changes once a step, not once a poll. */
let renderedText: string | undefined;
let renderedBytes = 0;
let rendered: ReleaseJson = { json: undefined, error: undefined };

/**
 * The release key, untrusted store content, as /gray/status shows it: decoded and encoded again
 * by cjson (in pcall), so whatever the store holds, the answer is valid JSON; what is not a JSON
 * object, or is too large, is shown as null and an error saying why.
 */
function renderRelease(text: string | undefined, bytes: number): ReleaseJson {
  if (bytes === 0) return { json: undefined, error: undefined };
  if (text === undefined)
    return { json: undefined, error: `unreadable: ${bytes} bytes, over the ${MAX_RELEASE_BYTES} shown` };
  if (string.match(text, "^%s*{")[0] === undefined) return { json: undefined, error: "unreadable: not a JSON object" };
  const codec = json();
  const [decoded, value] = pcall(codec.decode, text);
  if (!decoded || type(value) !== "table")
    return { json: undefined, error: `unreadable: not JSON (${printable(tostring(value), 100)})` };
  const [encoded, out] = pcall(codec.encode, value);
  if (!encoded) return { json: undefined, error: `unreadable: ${printable(tostring(out), 100)}` };
  return { json: out, error: undefined };
}

function currentRelease(): ReleaseJson {
  const [text, bytes] = releaseRead();
  if (text !== renderedText || bytes !== renderedBytes) {
    rendered = renderRelease(text, bytes);
    renderedText = text;
    renderedBytes = bytes;
  }
  return rendered;
}

/** The page, loaded on first use (a string of some 30 KB, in workers that never serve it not at all). */
let page: StatusPageModule | undefined;

/** Which rendering the request asks for: ?format= first, else a browser's Accept (text/html) gets the page. */
function statusFormat(): "json" | "prometheus" | "html" {
  const format = ngx_var.arg_format;
  if (format === "prometheus" || format === "html" || format === "json") return format;
  if (format !== undefined) return "json";
  const accept = ngx_var.http_accept;
  return accept !== undefined && string.find(accept, "text/html", 1, true)[0] !== undefined ? "html" : "json";
}

/**
 * The content handler of /gray/status: JSON (the default, or ?format=json), Prometheus text with
 * ?format=prometheus, or the status page for a browser (Accept: text/html, or ?format=html), which
 * polls the same location's JSON.
 */
export function status(): void {
  if (dict === undefined) {
    ngx.status = 503;
    ngx_header["Content-Type"] = "text/plain";
    ngx.print(
      `gray.router: counters need a lua_shared_dict; declare lua_shared_dict ${options.cache?.dict ?? DEFAULT_CACHE_DICT} 10m; (cache_dict is ${options.cache === undefined ? "false" : "not declared"})\n`,
    );
    return;
  }
  const format = statusFormat();
  // The same URL answers a browser and a client by their Accept: caches must keep them apart.
  if (ngx_var.arg_format === undefined) ngx_header.Vary = "Accept";
  if (format === "html") {
    page ??= require("gray.status_page") as StatusPageModule;
    ngx_header["Content-Type"] = "text/html; charset=utf-8";
    ngx_header["Content-Security-Policy"] = page.csp;
    ngx_header["Cache-Control"] = "no-store";
    ngx_header["X-Content-Type-Options"] = "nosniff";
    ngx_header["Referrer-Policy"] = "no-referrer";
    ngx.print(page.html);
    return;
  }
  const mc = options.memcached;
  const rules = currentRules();
  const view = rules.view;
  const canaries: Record<string, CanaryStatus> = {};
  for (const name in options.canaries) {
    const target = targetOf(rules, name);
    canaries[name] = { weight: 0, location: target.location, upstream: target.upstream };
  }
  for (let i = 0; i < view.owners.length; i++) {
    const c = canaries[view.owners[i]!];
    if (c !== undefined) c.weight += ((view.ends[i]! - view.starts[i]!) * 100) / BUCKETS;
  }
  const snapshot: Status = {
    ...totals(),
    weight: canaries[DEFAULT_CANARY]!.weight,
    ranges: view.rangeCount,
    canaries,
    stable_target: targetOf(rules, STABLE),
    document: documentStatus(),
    cache_dict: options.cache!.dict,
    memcached: `${mc.host}:${mc.port}`,
    config,
  };
  if (format === "prometheus") {
    ngx_header["Content-Type"] = "text/plain; version=0.0.4";
    ngx.print(statusPrometheus(snapshot));
  } else {
    ngx_header["Content-Type"] = "application/json";
    ngx.print(statusJson(snapshot, currentRelease()));
  }
}
