/**
 * What integration tests share: the runtime picked by global setup, the shared memcached,
 * and a router started per file. Cases are data, in the spirit of Test::Nginx.
 */
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, expect, inject } from "vitest";
import { FlagStore } from "../harness/flags.ts";
import { type Ask, closeAgents, get } from "../harness/http.ts";
import { type MemcachedLock, MemcachedServer, type MemcachedServerOptions } from "../harness/memcached.ts";
import { logProblems } from "../harness/nginx.ts";
import type { Runtime } from "../harness/runtime.ts";
import { createRuntime } from "../harness/pick-runtime.ts";
import { clearRules } from "../harness/rules.ts";
import { RouterStack, type RouterStackOptions } from "../harness/stack.ts";
import { SERVER_NAME, type TestCertificates, makeCertificates } from "../harness/tls.ts";
import { AdminStore, useStoreDefaults } from "../node-src/cli/store.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import type { LuaValue } from "../node-src/lua-literal.ts";

export type Route = "stable" | "canary";

export interface RouteCase {
  name: string;
  /** memcached keys to set ("1" unless given) before the request. */
  flags?: Record<string, string> | string[];
  request?: Ask;
  expect: Route;
}

export function sharedMemcached(): { host: string; port: number; address: string } {
  const port = inject("memcachedPort");
  return { host: "127.0.0.1", port, address: `127.0.0.1:${port}` };
}

/** The environment that points the CLI at the shared memcached. */
export const cliEnv = () => ({ GRAY_MEMCACHED: sharedMemcached().address });

/**
 * What the shared memcached holds now, to tell afterwards that a command wrote nothing: no key
 * it did not have, and the same rules revision (memcached may reclaim flushed items meanwhile,
 * so fewer keys is not a write).
 */
export async function storeState(): Promise<{ keys: string[]; pointer: string | undefined }> {
  const store = new AdminStore(sharedMemcached().address);
  try {
    return { keys: (await store.keys()).map((k) => k.key).sort(), pointer: await store.get("gray:rules") };
  } finally {
    store.close();
  }
}

export async function expectNothingWritten(before: { keys: string[]; pointer: string | undefined }): Promise<void> {
  const now = await storeState();
  expect(before.keys).toEqual(expect.arrayContaining(now.keys));
  expect(now.pointer).toBe(before.pointer);
}

/** Every key in the shared memcached, sorted: what a command wrote, or that it wrote nothing. */
export async function storedKeys(): Promise<string[]> {
  const store = new AdminStore(sharedMemcached().address);
  try {
    return (await store.keys()).map((k) => k.key).sort();
  } finally {
    store.close();
  }
}

let runtime: Runtime | undefined;
export async function testRuntime(): Promise<Runtime> {
  runtime ??= await createRuntime(inject("runtime"));
  return runtime;
}

/**
 * Empties memcached, and the rules the router holds: after a flush it would write its last revision
 * back (that is what keeps an operator's rules), so memcached gets a newer, empty revision, and a
 * router that held one is given time to load it (every worker). The empty document also lets a
 * test's first `gray add` build on it, as on a store in use, without --init.
 */
export async function resetStore(router: RouterStack, flags: FlagStore, address: string): Promise<void> {
  let status;
  try {
    status = await fetchStatus(router.statusUrl);
  } catch {
    // No status location or no dict in this conf: no document could be held either way that matters here.
  }
  await flags.flush();
  const prefix = status?.config.key_prefix ?? "";
  const revision = await clearRules(address, prefix);
  if (status?.document?.revision == null) return;
  await untilLoaded(router, revision, false);
}

/**
 * Until /gray/status shows the rules revision loaded; then, with several workers, `settleMs` more: as
 * long as a worker waits between checks (cache_ttl_ms, 500 ms by default), so every worker has it.
 * `strict` throws when it does not come within 3 s.
 */
export async function untilLoaded(router: RouterStack, revision: number, strict = true, settleMs = 600): Promise<void> {
  const deadline = Date.now() + 3000;
  let status = await fetchStatus(router.statusUrl);
  while (status.document.revision !== revision && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    status = await fetchStatus(router.statusUrl);
  }
  if (strict && status.document.revision !== revision)
    throw new Error(`revision ${revision} not loaded within 3 s (the router holds ${status.document.revision})`);
  if ((router.workers ?? 1) > 1) await new Promise((r) => setTimeout(r, settleMs));
}

/**
 * How a test reaches its own memcached: "open" as on the shared one, or "locked" with -Y
 * (credentials) and -Z (TLS, the harness's throwaway CA): the same test then runs against either.
 */
export interface StoreAccess {
  mode: "open" | "locked";
  /** MemcachedServer.start's options: -Y and -Z, or none. */
  server: MemcachedServerOptions;
  /** What the test process's own clients (AdminStore, FlagStore) send: credentials and TLS, or nothing. */
  client: MemcachedLock;
  /** A router's config with what it needs for the lock: memcached.auth_file, tls, server_name; the CA as lua_ssl_trusted_certificate; the directory mounted. */
  router(config: RouterStackOptions): RouterStackOptions;
  /** The CLI's environment for this store (GRAY_MEMCACHED and, locked, GRAY_MEMCACHED_AUTH_FILE, _TLS, _CA_FILE, _SERVER_NAME). */
  cliEnv(address: string): Record<string, string>;
}

const OPEN: StoreAccess = {
  mode: "open",
  server: {},
  client: {},
  router: (config) => config,
  cliEnv: (address) => ({ GRAY_MEMCACHED: address }),
};

let certificates: TestCertificates | undefined;

/** A lock of its own: certificates made once per test file, an auth file beside them (all readable by memcached's user). */
function lockedAccess(): StoreAccess {
  certificates ??= makeCertificates();
  const certs = certificates;
  const authFile = join(certs.dir, "auth");
  const user = "ops";
  const password = "locked-store-pass";
  writeFileSync(authFile, `${user}:${password}\n`);
  chmodSync(authFile, 0o644);
  return {
    mode: "locked",
    server: { authFile, tls: { cert: certs.cert, key: certs.key } },
    client: { auth: { user, password }, tls: { ca: readFileSync(certs.ca, "utf8"), servername: SERVER_NAME } },
    router: (config) => {
      const options = config.options ?? {};
      const memcached = (options.memcached ?? {}) as Record<string, LuaValue>;
      return {
        ...config,
        options: { ...options, memcached: { ...memcached, auth_file: authFile, tls: true, server_name: SERVER_NAME } },
        paths: [...(config.paths ?? []), certs.dir],
        httpExtra: (ports) => [
          ...(config.httpExtra?.(ports) ?? []),
          `lua_ssl_trusted_certificate ${certs.ca};`,
          "lua_ssl_verify_depth 2;",
        ],
      };
    },
    cliEnv: (address) => ({
      GRAY_MEMCACHED: address,
      GRAY_MEMCACHED_AUTH_FILE: authFile,
      GRAY_MEMCACHED_TLS: "1",
      GRAY_MEMCACHED_CA_FILE: certs.ca,
      GRAY_MEMCACHED_SERVER_NAME: SERVER_NAME,
    }),
  };
}

/**
 * The store access for the describe block; locked, the test process's AdminStores (withStore, the
 * harness/rules.ts helpers) log in and speak TLS by default for the block (useStoreDefaults, as
 * the CLI's flags do), and go back to none after it.
 */
export function useStoreAccess(locked: boolean): StoreAccess {
  const access = locked ? lockedAccess() : OPEN;
  if (locked) {
    beforeAll(() => useStoreDefaults(access.client));
    afterAll(() => useStoreDefaults({}));
  }
  return access;
}

/**
 * A router on a memcached of its own (one a test may stop, kill or pause), with a FlagStore on it,
 * for the describe block; stopped after it. `locked`: memcached with -Y and -Z, the router, the
 * FlagStore and the block's AdminStores configured for it (useStoreAccess), `cliEnv` for `gray`.
 */
export function useOwnStore(config: Omit<RouterStackOptions, "runtime" | "memcached"> & { locked?: boolean }) {
  const { locked = false, ...stack } = config;
  const access = useStoreAccess(locked);
  const ctx = { access } as {
    memcached: MemcachedServer;
    router: RouterStack;
    flags: FlagStore;
    access: StoreAccess;
    cliEnv: Record<string, string>;
  };
  beforeAll(async () => {
    const runtime = await testRuntime();
    ctx.memcached = await MemcachedServer.start(runtime, access.server);
    ctx.router = await RouterStack.start(access.router({ ...stack, runtime, memcached: ctx.memcached }));
    ctx.flags = new FlagStore(ctx.memcached.address, access.client);
    ctx.cliEnv = access.cliEnv(ctx.memcached.address);
  });
  afterAll(async () => {
    ctx.flags?.close();
    await closeAgents();
    await ctx.router?.stop();
    await ctx.memcached?.stop();
  });
  return ctx;
}

/** A router for the whole file, on the shared memcached, reset before each test. */
export function useRouter(
  config: Omit<RouterStackOptions, "runtime" | "memcached"> & Partial<Pick<RouterStackOptions, "memcached">> = {},
) {
  const ctx = {} as { router: RouterStack; flags: FlagStore };
  beforeAll(async () => {
    const memcached = config.memcached ?? sharedMemcached();
    ctx.router = await RouterStack.start({ ...config, runtime: await testRuntime(), memcached });
    ctx.flags = new FlagStore(`${memcached.host}:${memcached.port}`);
  });
  beforeEach(async () => {
    const memcached = config.memcached ?? sharedMemcached();
    await resetStore(ctx.router, ctx.flags, `${memcached.host}:${memcached.port}`);
  });
  afterAll(async () => {
    ctx.flags?.close();
    await closeAgents();
    await ctx.router?.stop();
  });
  return ctx;
}

/** The version that answered, from the backends' bodies ("stable\n" / "canary\n"). */
export async function routeOf(url: string, ask: Ask = {}): Promise<Route> {
  const reply = await get(url, ask);
  expect(reply.status, `status for ${JSON.stringify(ask)}`).toBe(200);
  const body = reply.body.trim();
  expect(["stable", "canary"]).toContain(body);
  return body as Route;
}

/** Asks until the route is `want` or the deadline passes; returns how long it took. */
export async function untilRoute(url: string, from: string, want: Route, withinMs: number): Promise<number> {
  const started = Date.now();
  for (;;) {
    if ((await routeOf(url, { from })) === want) return Date.now() - started;
    if (Date.now() - started > withinMs) throw new Error(`${from} not routed to ${want} within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Sets the case's flags, then asks twice: cold, then over warm pooled connections. */
export async function runCase(url: string, flags: FlagStore, c: RouteCase): Promise<void> {
  const entries = Array.isArray(c.flags) ? c.flags.map((k) => [k, "1"] as const) : Object.entries(c.flags ?? {});
  for (const [key, value] of entries) await flags.set(key, value);
  for (const run of ["cold", "warm"]) {
    expect(await routeOf(url, c.request), `${c.name} (${run})`).toBe(c.expect);
  }
}

export function expectCleanLog(router: RouterStack): void {
  expect(logProblems(router.errorLog())).toEqual([]);
}

/** The router's store-failure warnings in error.log (one per worker per 5 s at most). */
export function storeWarnings(router: RouterStack): string[] {
  return router
    .errorLog()
    .split("\n")
    .filter((l) => l.includes("gray.router: memcached"));
}

/**
 * nginx's own line when memcached dies while the rules timer talks to it: cosockets log resets at
 * error level whatever lua_socket_log_errors says. Expected when a test kills the store, nowhere else.
 */
const STORE_RESET = /recv\(\) failed \(104: Connection reset by peer\), context: ngx\.timer/;

/** No error in error.log (but a dying store's reset), and the store failures only as rate-limited warnings: at least one, at most `most`. */
export function expectRateLimitedWarnings(router: RouterStack, most: number): void {
  expect(logProblems(router.errorLog()).filter((l) => !STORE_RESET.test(l))).toEqual([]);
  const warnings = storeWarnings(router);
  expect(warnings.length).toBeGreaterThan(0);
  expect(warnings.length).toBeLessThanOrEqual(most);
}
