/**
 * nginx configuration for the gray router, rendered from one place for the drop-in example
 * that `npm run build` writes and for every config the harness runs, so the two cannot drift.
 */
import { DEFAULT_CACHE_DICT } from "../lua-src/gray/options.ts";
import { type LuaValue, toLua } from "./lua-literal.ts";

/** OpenResty has lua-nginx-module built in; Debian/Ubuntu nginx loads it from libnginx-mod-http-lua. */
export type Flavour = "openresty" | "debian";

export const DEBIAN_MODULES = [
  "/usr/lib/nginx/modules/ndk_http_module.so",
  "/usr/lib/nginx/modules/ngx_http_lua_module.so",
];

/**
 * How the access handler hands a request on: "upstream" sets $gray_upstream for proxy_pass in the
 * same location (route_upstream(), no internal redirect); "exec" is the original recipe's
 * ngx.exec to @client / @client_test (route()).
 */
export type Pattern = "upstream" | "exec";
export const PATTERNS: Pattern[] = ["upstream", "exec"];

export interface RouterSite {
  /** The drop-in pattern (default "exec", the original recipe's). */
  pattern?: Pattern;
  /** Directories holding gray/router.lua (dist/lua), searched before the default path. */
  luaPaths: string[];
  /** The table given to configure(); undefined keys are left out. */
  options: Record<string, LuaValue>;
  /** "8080", "127.0.0.1:8080", "[::1]:8080": one listen directive each. */
  listen: string[];
  /** Upstream servers ("host:port" plus parameters) of the stable and the canary version. */
  stable: string[];
  canary: string[];
  /**
   * More canaries by name, each with its servers: an upstream {} block and a named location (@name)
   * each, the defaults of the `canaries` option (which the caller sets).
   */
  canaries?: Record<string, string[]>;
  /** Proxy settings shared by @client and @client_test. */
  proxy?: string[];
  /** Extra directives inside the server block. */
  serverExtra?: string[];
  /** Emit the explanatory comments (the drop-in example) or not (test configs). */
  comments?: boolean;
  /** Lua lines shown commented out inside configure({ }), as examples of more options. */
  optionExamples?: string[];
  /** The lua_shared_dict for the cache and counters ("gray_cache 10m" unless given); false leaves it out. */
  cacheDict?: { name: string; size: string } | false;
  /** Who may read /gray/status (allow lines; everyone else is denied). */
  statusAllow?: string[];
  /** false leaves out the log_by_lua line: no route counters (requests, 5xx, upstream time). */
  counters?: boolean;
  /** The init_worker_by_lua line: each worker loads the rules as it starts, not on its first request. */
  initWorker?: boolean;
}

const DEFAULT_DICT = { name: DEFAULT_CACHE_DICT, size: "10m" };

/** configure({...}) on one line, or one option a line followed by commented examples. */
function configureCall(site: RouterSite): string[] {
  if (!site.optionExamples?.length)
    return [`init_by_lua_block { require("gray.router").configure(${toLua(site.options)}) }`];
  const fields = Object.entries(site.options).map(([k, v]) => `        ${k} = ${toLua(v)},`);
  return [
    "init_by_lua_block {",
    '    require("gray.router").configure({',
    ...fields,
    ...site.optionExamples.map((l) => `        -- ${l}`),
    "    })",
    "}",
  ];
}

/** Proxy settings of @client and @client_test unless the site gives its own: keep-alive to the upstreams. */
export const DEFAULT_PROXY = [
  "proxy_http_version 1.1;",
  'proxy_set_header Connection "";',
  "proxy_set_header Host $host;",
];

const indent = (lines: string[], by: string) => lines.map((l) => (l === "" ? l : by + l));

/** The http-context part: what a user drops into conf.d/ or includes inside http { }. */
export function renderSite(site: RouterSite): string[] {
  const c = (...lines: string[]) => (site.comments ? lines.map((l) => `# ${l}`) : []);
  const luaPath = [...site.luaPaths.map((p) => `${p}/?.lua`), ";"].join(";");
  const proxy = site.proxy ?? DEFAULT_PROXY;
  return [
    ...c(
      "Where gray/router.lua is (npm run build writes it to dist/lua); ';;' keeps the default path,",
      "which finds resty.core and resty.memcached (Debian: nginx.memcached, found too).",
    ),
    `lua_package_path "${luaPath}";`,
    ...c(
      "Store failures are reported by the router itself, at most one warning every few seconds;",
      "this keeps the socket layer from logging the same failure once per request.",
    ),
    "lua_socket_log_errors off;",
    ...dictLines(site, c),
    "",
    ...c(
      "Options are checked here, once: a bad one stops nginx from starting, and a reload with it",
      "is refused while the running workers keep serving.",
    ),
    ...configureCall(site),
    ...(site.initWorker
      ? [
          ...c(
            "Optional: each worker loads the rules and starts checking them as it starts, so no request",
            "waits for the first load and an idle router still shows the document and the release.",
          ),
          'init_worker_by_lua_block { require("gray.router").init_worker() }',
        ]
      : []),
    "",
    ...c("The stable (normal) version."),
    "upstream client {",
    ...indent(
      site.stable.map((s) => `server ${s};`),
      "    ",
    ),
    "    keepalive 32;",
    "}",
    ...c("The canary (new) version."),
    "upstream client_test {",
    ...indent(
      site.canary.map((s) => `server ${s};`),
      "    ",
    ),
    "    keepalive 32;",
    "}",
    ...Object.entries(site.canaries ?? {}).flatMap(([name, servers]) => [
      `upstream ${name} {`,
      ...indent(
        servers.map((s) => `server ${s};`),
        "    ",
      ),
      "    keepalive 32;",
      "}",
    ]),
    "",
    "server {",
    ...indent(
      site.listen.map((l) => `listen ${l};`),
      "    ",
    ),
    ...indent(site.serverExtra ?? [], "    "),
    "",
    ...(site.counters === false
      ? []
      : [
          ...indent(c("Counts every routed request by route (requests, 5xx, upstream time) for /gray/status."), "    "),
          '    log_by_lua_block { require("gray.router").log() }',
          "",
        ]),
    ...indent(
      site.pattern === "upstream"
        ? upstreamLocations(proxy, c)
        : execLocations(proxy, c, Object.keys(site.canaries ?? {})),
      "    ",
    ),
    "",
    ...indent(
      c(
        "Live counters: JSON, Prometheus text with ?format=prometheus, or a live page for a browser;",
        "`gray status` reads it. Keep it closed to all but trusted hosts: it shows the rules' shape.",
      ),
      "    ",
    ),
    "    location = /gray/status {",
    ...indent(
      (site.statusAllow ?? ["127.0.0.1", "::1"]).map((a) => `allow ${a};`),
      "        ",
    ),
    "        deny all;",
    '        content_by_lua_block { require("gray.router").status() }',
    "    }",
    "}",
  ];
}

/** route_upstream() names the route's upstream {} block in $gray_upstream; the same location proxies to it. */
function upstreamLocations(proxy: string[], c: (...lines: string[]) => string[]): string[] {
  return [
    ...c(
      "Every request is routed here: route_upstream() sets $gray_upstream to client or client_test,",
      "which must be declared (set) where it is used; no internal redirect.",
    ),
    "location / {",
    '    set $gray_upstream "";',
    '    access_by_lua_block { require("gray.router").route_upstream() }',
    ...indent(proxy, "    "),
    "    proxy_pass http://$gray_upstream;",
    "}",
  ];
}

/** route() ends with ngx.exec to @client or @client_test, as in the original recipe. */
function execLocations(proxy: string[], c: (...lines: string[]) => string[], canaries: string[]): string[] {
  return [
    ...c("Every request is routed here; route() ends with ngx.exec to one of the locations below."),
    "location / {",
    '    access_by_lua_block { require("gray.router").route() }',
    "}",
    ...c("Named locations: no access_by_lua here, or the router would run again after ngx.exec."),
    "location @client {",
    ...indent(proxy, "    "),
    "    proxy_pass http://client;",
    "}",
    "location @client_test {",
    ...indent(proxy, "    "),
    "    proxy_pass http://client_test;",
    "}",
    ...canaries.flatMap((name) => [
      `location @${name} {`,
      ...indent(proxy, "    "),
      `    proxy_pass http://${name};`,
      "}",
    ]),
  ];
}

function dictLines(site: RouterSite, c: (...lines: string[]) => string[]): string[] {
  const dict = site.cacheDict ?? DEFAULT_DICT;
  if (dict === false) return [];
  return [
    ...c(
      "Cached lookups (found and absent) shared by all workers, and the live counters.",
      "When it is full, the least recently used entries make room.",
    ),
    `lua_shared_dict ${dict.name} ${dict.size};`,
  ];
}

export interface MainConf {
  flavour: Flavour;
  workers?: number;
  /** false: one process and no master (`master_process off`), e.g. an app copy to be killed outright. */
  masterProcess?: boolean;
  /** Relative paths resolve against nginx's prefix (-p). */
  errorLog?: string;
  errorLogLevel?: string;
  pidFile?: string;
  /** http-context lines: the site and anything else (backends, oracles). */
  http: string[];
}

/** A complete nginx.conf around http-context lines. */
export function renderMain(conf: MainConf): string {
  const modules = conf.flavour === "debian" ? DEBIAN_MODULES.map((m) => `load_module ${m};`) : [];
  return [
    ...modules,
    ...(conf.masterProcess === false ? ["master_process off;"] : []),
    `worker_processes ${conf.workers ?? 1};`,
    `error_log ${conf.errorLog ?? "logs/error.log"} ${conf.errorLogLevel ?? "notice"};`,
    `pid ${conf.pidFile ?? "logs/nginx.pid"};`,
    "",
    "events {",
    "    worker_connections 1024;",
    "}",
    "",
    "http {",
    "    access_log off;",
    ...indent(conf.http, "    "),
    "}",
    "",
  ].join("\n");
}
