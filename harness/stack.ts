/**
 * The router as users run it: the build's Lua in nginx, two backend versions (stable and
 * canary, each its own listener answering its name), and memcached. Tests, the demo and the
 * benchmarks all start it through here.
 */
import { DEFAULT_CACHE_DICT } from "../lua-src/gray/options.ts";
import type { LuaValue } from "../node-src/lua-literal.ts";
import { DEFAULT_PROXY, type Pattern, renderMain, renderSite } from "../node-src/nginx-conf.ts";
import { freePort } from "./net.ts";
import { NginxServer, type ReloadResult } from "./nginx.ts";
import { LUA_DIR, LUA_SHIM_DIR } from "./paths.ts";
import type { Runtime } from "./runtime.ts";

/**
 * The table given to configure(), as Lua values and unchecked: tests hand it bad options on purpose.
 * lua-src/gray/options.ts's RouterOptions is what configure() makes of it.
 */
export type ConfigureTable = Record<string, LuaValue>;

/** Where the router's memcached is; a MemcachedServer is one. */
export interface MemcachedAddress {
  host: string;
  port: number;
}

export interface RouterStackOptions {
  runtime: Runtime;
  memcached: MemcachedAddress;
  /** configure() options; memcached host and port are filled in unless given. */
  options?: ConfigureTable;
  /** The loopback address the router listens on (default 127.0.0.1), e.g. 127.0.30.1 for a fleet's first router. */
  host?: string;
  /** Also listen on [::1] (same port). */
  ipv6?: boolean;
  /** More http-context lines, e.g. a realip oracle server. */
  httpExtra?: (ports: StackPorts) => string[];
  workers?: number;
  /** Leave out the lua_shared_dict (the router then runs uncached, as a hand-written conf might). */
  noCacheDict?: boolean;
  /** The lua_shared_dict's size (default 10m), e.g. the smallest nginx accepts to make it evict. */
  cacheDictSize?: string;
  /** More directives in the router's server block. */
  serverExtra?: string[];
  /** listen ... reuseport: the kernel spreads connections over the workers. */
  reuseport?: boolean;
  /** Upstream servers of each version ("host:port" plus parameters, e.g. "down"); default: the stack's own backends. */
  stable?: string[];
  canary?: string[];
  /** More canaries by name, each a backend answering its name, added to the `canaries` option. */
  canaries?: string[];
  /** Proxy settings of @client and @client_test (default DEFAULT_PROXY). */
  proxy?: string[];
  /** false: no log_by_lua line, as a conf without route counters has. */
  counters?: boolean;
  /** The init_worker_by_lua line: workers load the rules as they start (default: on their first request). */
  initWorker?: boolean;
  /** The drop-in pattern: route_upstream() and proxy_pass to $gray_upstream, or route() and ngx.exec (the default). */
  pattern?: Pattern;
  /** The rendered nginx.conf as a user might have edited it by hand (mistakes included). */
  handEdit?: (conf: string) => string;
  /** More host directories nginx reads (containers mount them at the same path), e.g. an auth_file's. */
  paths?: string[];
}

/** Everything about the stack's nginx.conf but the router options: what a reload may change. */
export type StackExtras = Pick<
  RouterStackOptions,
  | "host"
  | "ipv6"
  | "httpExtra"
  | "workers"
  | "noCacheDict"
  | "cacheDictSize"
  | "serverExtra"
  | "reuseport"
  | "stable"
  | "canary"
  | "canaries"
  | "proxy"
  | "counters"
  | "initWorker"
  | "pattern"
  | "handEdit"
>;

/** Seed 001's failover: a dead copy is skipped after a short connect timeout, the request retried on the next one. */
export const FAILOVER_PROXY = [...DEFAULT_PROXY, "proxy_connect_timeout 200ms;", "proxy_next_upstream error timeout;"];

export interface StackPorts {
  router: number;
  stable: number;
  canary: number;
  extra: number;
  /** The backends of the stack's extra canaries, by name. */
  canaries: Record<string, number>;
}

/** How long a backend's /slow location takes to answer. */
export const SLOW_BACKEND_S = 0.05;

/**
 * A backend version: answers its name (with `status`, 200 unless a broken version is wanted), so a
 * response shows which version served it; after `delayS` seconds when given (a slow version).
 */
export function backend(name: string, port: number, status = 200, delayS = 0): string[] {
  const answer =
    delayS > 0
      ? `content_by_lua_block { ngx.sleep(${delayS}) ngx.status = ${status} ngx.say("${name}") }`
      : `return ${status} "${name}\\n";`;
  return [
    "server {",
    `    listen 127.0.0.1:${port};`,
    "    default_type text/plain;",
    `    location / { ${answer} }`,
    `    location = /fail { return 500 "${name} failed\\n"; }`,
    // Answers after a known time, so measured upstream times can be checked against it.
    `    location = /slow { content_by_lua_block { ngx.sleep(${SLOW_BACKEND_S}) ngx.say("${name}") } }`,
    "}",
  ];
}

export function renderStackConf(
  runtime: Runtime,
  memcached: MemcachedAddress,
  ports: StackPorts,
  options: ConfigureTable = {},
  extra: StackExtras = {},
): string {
  const given = (options.memcached ?? {}) as Record<string, LuaValue>;
  const names = extra.canaries ?? [];
  const canaryOption = names.length === 0 ? {} : { canaries: Object.fromEntries(names.map((n) => [n, {}])) };
  const site = renderSite({
    luaPaths: runtime.flavour === "debian" ? [LUA_DIR, LUA_SHIM_DIR] : [LUA_DIR],
    options: { ...canaryOption, ...options, memcached: { host: memcached.host, port: memcached.port, ...given } },
    canaries: Object.fromEntries(names.map((n) => [n, [`127.0.0.1:${ports.canaries[n]}`]])),
    listen: [`${extra.host ?? "127.0.0.1"}:${ports.router}`, ...(extra.ipv6 ? [`[::1]:${ports.router}`] : [])].map(
      (l) => (extra.reuseport ? `${l} reuseport` : l),
    ),
    stable: extra.stable ?? [`127.0.0.1:${ports.stable}`],
    canary: extra.canary ?? [`127.0.0.1:${ports.canary}`],
    proxy: extra.proxy,
    cacheDict: extra.noCacheDict
      ? false
      : extra.cacheDictSize === undefined
        ? undefined
        : { name: DEFAULT_CACHE_DICT, size: extra.cacheDictSize },
    serverExtra: extra.serverExtra,
    counters: extra.counters,
    initWorker: extra.initWorker,
    pattern: extra.pattern,
  });
  const conf = renderMain({
    flavour: runtime.flavour,
    workers: extra.workers,
    http: [
      ...site,
      "",
      ...backend("stable", ports.stable),
      ...backend("canary", ports.canary),
      ...names.flatMap((n) => backend(n, ports.canaries[n]!)),
      ...(extra.httpExtra?.(ports) ?? []),
    ],
  });
  return extra.handEdit ? extra.handEdit(conf) : conf;
}

export class RouterStack {
  private constructor(
    private readonly config: RouterStackOptions,
    readonly nginx: NginxServer,
    readonly ports: StackPorts,
  ) {}

  static async start(config: RouterStackOptions): Promise<RouterStack> {
    const ports = {
      router: await freePort(),
      stable: await freePort(),
      canary: await freePort(),
      extra: await freePort(),
      canaries: {} as Record<string, number>,
    };
    for (const name of config.canaries ?? []) ports.canaries[name] = await freePort();
    const conf = renderStackConf(config.runtime, config.memcached, ports, config.options, config);
    const nginx = NginxServer.prepare(conf, ports.router, config.host);
    try {
      await nginx.start(config.runtime, [LUA_DIR, LUA_SHIM_DIR, ...(config.paths ?? [])]);
    } catch (err) {
      await nginx.stop();
      throw err;
    }
    return new RouterStack(config, nginx, ports);
  }

  get url(): string {
    return this.nginx.url;
  }

  /** nginx worker processes (1 unless configured). */
  get workers(): number | undefined {
    return this.config.workers;
  }

  get statusUrl(): string {
    return `${this.url}/gray/status`;
  }

  get url6(): string {
    return `http://[::1]:${this.ports.router}`;
  }

  /** The stack's nginx.conf with other router options and extras (the same ports), kept as the stack's config from now on. */
  render(options: ConfigureTable = this.config.options ?? {}, changes: StackExtras = {}): string {
    Object.assign(this.config, changes, { options });
    const { runtime, memcached } = this.config;
    return renderStackConf(runtime, memcached, this.ports, options, this.config);
  }

  /** Reloads nginx with other router options and extras (the same ports). */
  reload(options?: ConfigureTable, changes: StackExtras = {}): Promise<ReloadResult> {
    return this.nginx.reload(this.render(options, changes));
  }

  errorLog(): string {
    return this.nginx.errorLog();
  }

  stop(): Promise<void> {
    return this.nginx.stop();
  }
}

/**
 * One copy of the app (seed 001's app1 / app2): its own nginx answering its version, as one
 * process without a master, so it can be stopped, killed outright, or restarted as another
 * version on the same port.
 */
export class AppCopy {
  private constructor(
    private readonly runtime: Runtime,
    readonly port: number,
    private server: NginxServer,
    private currentVersion: string,
  ) {}

  private static async serve(
    runtime: Runtime,
    version: string,
    port: number,
    status = 200,
    delayS = 0,
  ): Promise<NginxServer> {
    const server = NginxServer.prepare(
      renderMain({ flavour: runtime.flavour, masterProcess: false, http: backend(version, port, status, delayS) }),
      port,
    );
    try {
      await server.start(runtime, []);
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  /** A copy answering `version`, with `status` (a broken version answers 500), after `delayS` seconds (a slow one). */
  static async start(runtime: Runtime, version: string, status = 200, delayS = 0): Promise<AppCopy> {
    const port = await freePort();
    return new AppCopy(runtime, port, await AppCopy.serve(runtime, version, port, status, delayS), version);
  }

  /** host:port, as an upstream server line takes it. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get version(): string {
    return this.currentVersion;
  }

  /** Stops it gracefully and starts the other version (answering `status`) in its place. */
  async restart(version: string, status = 200): Promise<void> {
    await this.server.stop();
    this.server = await AppCopy.serve(this.runtime, version, this.port, status);
    this.currentVersion = version;
  }

  /** SIGKILL: connections drop mid-request, the port refuses from then on. */
  async kill(): Promise<void> {
    this.server.signal("SIGKILL");
    await this.server.stop();
  }

  stop(): Promise<void> {
    return this.server.stop();
  }
}
