/**
 * The router as users run it: the build's Lua in nginx, two backend versions (stable and
 * canary, each its own listener answering its name), and memcached. Tests, the demo and the
 * benchmarks all start it through here.
 */
import type { LuaValue } from "../node-src/lua-literal.ts";
import { renderMain, renderSite } from "../node-src/nginx-conf.ts";
import { freePort } from "./net.ts";
import { NginxServer, type ReloadResult } from "./nginx.ts";
import { LUA_DIR, LUA_SHIM_DIR } from "./paths.ts";
import type { Runtime } from "./runtime.ts";

export type RouterOptions = Record<string, LuaValue>;

/** Where the router's memcached is; a MemcachedServer is one. */
export interface MemcachedAddress {
  host: string;
  port: number;
}

export interface RouterStackOptions {
  runtime: Runtime;
  memcached: MemcachedAddress;
  /** configure() options; memcached host and port are filled in unless given. */
  options?: RouterOptions;
  /** Also listen on [::1] (same port). */
  ipv6?: boolean;
  /** More http-context lines, e.g. a realip oracle server. */
  httpExtra?: (ports: StackPorts) => string[];
  workers?: number;
  /** Leave out the lua_shared_dict (the router then runs uncached, as a hand-written conf might). */
  noCacheDict?: boolean;
  /** More directives in the router's server block. */
  serverExtra?: string[];
  /** listen ... reuseport: the kernel spreads connections over the workers. */
  reuseport?: boolean;
}

export interface StackPorts {
  router: number;
  stable: number;
  canary: number;
  extra: number;
}

/** A backend version: answers its name, so a response shows which version served it. */
export function backend(name: string, port: number): string[] {
  return [
    "server {",
    `    listen 127.0.0.1:${port};`,
    "    default_type text/plain;",
    `    location / { return 200 "${name}\\n"; }`,
    `    location = /fail { return 500 "${name} failed\\n"; }`,
    "}",
  ];
}

export function renderStackConf(
  runtime: Runtime,
  memcached: MemcachedAddress,
  ports: StackPorts,
  options: RouterOptions = {},
  extra: Pick<RouterStackOptions, "ipv6" | "httpExtra" | "workers" | "noCacheDict" | "serverExtra" | "reuseport"> = {},
): string {
  const given = (options.memcached ?? {}) as Record<string, LuaValue>;
  const site = renderSite({
    luaPaths: runtime.flavour === "debian" ? [LUA_DIR, LUA_SHIM_DIR] : [LUA_DIR],
    options: { ...options, memcached: { host: memcached.host, port: memcached.port, ...given } },
    listen: [`127.0.0.1:${ports.router}`, ...(extra.ipv6 ? [`[::1]:${ports.router}`] : [])].map((l) => (extra.reuseport ? `${l} reuseport` : l)),
    stable: [`127.0.0.1:${ports.stable}`],
    canary: [`127.0.0.1:${ports.canary}`],
    cacheDict: extra.noCacheDict ? false : undefined,
    serverExtra: extra.serverExtra,
  });
  return renderMain({
    flavour: runtime.flavour,
    workers: extra.workers,
    http: [...site, "", ...backend("stable", ports.stable), ...backend("canary", ports.canary), ...(extra.httpExtra?.(ports) ?? [])],
  });
}

export class RouterStack {
  private constructor(
    private readonly config: RouterStackOptions,
    readonly nginx: NginxServer,
    readonly ports: StackPorts,
  ) {}

  static async start(config: RouterStackOptions): Promise<RouterStack> {
    const ports = { router: await freePort(), stable: await freePort(), canary: await freePort(), extra: await freePort() };
    const conf = renderStackConf(config.runtime, config.memcached, ports, config.options, config);
    const nginx = NginxServer.prepare(conf, ports.router);
    try {
      await nginx.start(config.runtime, [LUA_DIR, LUA_SHIM_DIR]);
    } catch (err) {
      await nginx.stop();
      throw err;
    }
    return new RouterStack(config, nginx, ports);
  }

  get url(): string {
    return this.nginx.url;
  }

  get statusUrl(): string {
    return `${this.url}/gray/status`;
  }

  get url6(): string {
    return `http://[::1]:${this.ports.router}`;
  }

  /** Reloads nginx with other router options (the same ports and backends). */
  reload(options: RouterOptions): Promise<ReloadResult> {
    const { runtime, memcached } = this.config;
    return this.nginx.reload(renderStackConf(runtime, memcached, this.ports, options, this.config));
  }

  errorLog(): string {
    return this.nginx.errorLog();
  }

  stop(): Promise<void> {
    return this.nginx.stop();
  }
}
