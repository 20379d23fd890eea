/** configure(): every bad option stops nginx from starting, named; a reload with one is refused. */
import { describe, expect, it } from "vitest";
import { closeAgents } from "../harness/http.ts";
import { logProblems } from "../harness/nginx.ts";
import { type ConfigureTable, RouterStack } from "../harness/stack.ts";
import { parseOptions } from "../lua-src/gray/options.ts";
import { PATTERNS } from "../node-src/nginx-conf.ts";
import { expectCleanLog, routeOf, sharedMemcached, testRuntime, useRouter } from "./support.ts";

const BAD: { options: ConfigureTable; names: string }[] = [
  { options: { bogus: 1 }, names: "unknown option bogus" },
  { options: { memcached: { prot: 11211 } }, names: "unknown option memcached.prot" },
  { options: { memcached: { port: 70000 } }, names: "memcached.port" },
  { options: { memcached: { port: "11211" } }, names: "memcached.port" },
  { options: { memcached: { timeout_ms: 0 } }, names: "memcached.timeout_ms" },
  { options: { memcached: { pool_size: 1.5 } }, names: "memcached.pool_size" },
  { options: { memcached: { host: "" } }, names: "memcached.host" },
  { options: { memcached: "127.0.0.1:11211" }, names: "memcached" },
  { options: { memcached: { tls: "on" } }, names: "memcached.tls" },
  { options: { memcached: { tls: true, tls_verify: 0 } }, names: "memcached.tls_verify" },
  { options: { memcached: { tls: true, server_name: "a b" } }, names: "memcached.server_name" },
  { options: { memcached: { server_name: "cache.internal" } }, names: "memcached.server_name needs memcached.tls" },
  { options: { memcached: { tls_verify: false } }, names: "memcached.tls_verify needs memcached.tls" },
  { options: { key_prefix: "gray key:" }, names: "key_prefix" },
  { options: { key_prefix: "x".repeat(300) }, names: "key_prefix" },
  { options: { stable_location: "client" }, names: "stable_location" },
  { options: { canary_location: 5 }, names: "canary_location" },
  { options: { canary_value: "" }, names: "canary_value" },
  { options: { trusted_proxies: ["10.0.0.0/8", "10.0.0.0/33"] }, names: "trusted_proxies[2]" },
  { options: { trusted_proxies: ["2001:db8::/129"] }, names: "trusted_proxies[1]" },
  { options: { trusted_proxies: ["not-an-ip"] }, names: "trusted_proxies[1]" },
  { options: { trusted_proxies: "10.0.0.0/8" }, names: "trusted_proxies" },
  { options: { debug_header: "X Gray Route" }, names: "debug_header" },
  { options: { stable_upstream: "http://client" }, names: "stable_upstream" },
  { options: { canary_upstream: "client_test:8080" }, names: "canary_upstream" },
  { options: { canary_upstream: "" }, names: "canary_upstream" },
];

describe("option validation (the same code, as JavaScript)", () => {
  it("fills in the defaults of the seed", () => {
    const options = parseOptions({});
    expect(options).toMatchObject({
      memcached: { host: "127.0.0.1", port: 11211, timeout_ms: 50 },
      key_prefix: "",
      stable_location: "@client",
      canary_location: "@client_test",
      stable_upstream: "client",
      canary_upstream: "client_test",
      canary_value: "1",
      trusted_proxies: [],
      debug_header: undefined,
    });
  });

  it("TLS: off by default; on, it verifies and names the host unless told otherwise", () => {
    expect(parseOptions({})).toMatchObject({ memcached: { tls: undefined } });
    expect(parseOptions({ memcached: { host: "cache.internal", tls: true } })).toMatchObject({
      memcached: { tls: { server_name: "cache.internal", verify: true } },
    });
    expect(parseOptions({ memcached: { tls: true, server_name: "localhost", tls_verify: false } })).toMatchObject({
      memcached: { tls: { server_name: "localhost", verify: false } },
    });
  });

  for (const { options, names } of BAD) {
    it(`refuses ${JSON.stringify(options).slice(0, 60)}`, () => {
      const result = parseOptions(options);
      expect(typeof result).toBe("string");
      expect(result).toContain(names);
    });
  }
});

describe("nginx refuses to start with a bad option", () => {
  for (const { options, names } of BAD) {
    it(`${names}: ${JSON.stringify(options).slice(0, 60)}`, async () => {
      const start = RouterStack.start({ runtime: await testRuntime(), memcached: sharedMemcached(), options });
      await expect(start).rejects.toThrow(names);
    });
  }

  it("init_worker() called from init_by_lua, where no timer can start: the message names init_worker_by_lua_block", async () => {
    const start = RouterStack.start({
      runtime: await testRuntime(),
      memcached: sharedMemcached(),
      handEdit: (conf) => conf.replace(/(configure\(.*\)) \}/, '$1 require("gray.router").init_worker() }'),
    });
    await expect(start).rejects.toThrow(
      'init_worker() belongs in init_worker_by_lua_block { require("gray.router").init_worker() }',
    );
  });
});

// A reload keeps the route in both drop-in patterns.
describe.each(PATTERNS)("%s pattern", (pattern) => {
  describe("reload", () => {
    const ctx = useRouter({ pattern, options: { key_prefix: "old:" } });

    it("with a bad option is refused and the running config keeps serving", async () => {
      await ctx.flags.set("old:127.0.0.40");
      const result = await ctx.router.reload({ key_prefix: "new:", memcached: { port: 0 } });
      expect(result.ok).toBe(false);
      expect(result.log).toContain("memcached.port");
      await closeAgents();
      for (let i = 0; i < 5; i++) expect(await routeOf(ctx.router.url, { from: "127.0.0.40" })).toBe("canary");
    });

    it("with good options takes effect", async () => {
      await ctx.flags.set("new:127.0.0.41");
      const result = await ctx.router.reload({ key_prefix: "new:" });
      expect(result.ok, result.log).toBe(true);
      await closeAgents();
      // Old workers finish gracefully; a fresh connection is served by the new ones.
      expect(await routeOf(ctx.router.url, { from: "127.0.0.41" })).toBe("canary");
    });

    it("leaves no error but the refused reload's in error.log", () => {
      const problems = logProblems(ctx.router.errorLog());
      expect(problems.length, "the refused reload logged its error").toBeGreaterThan(0);
      expect(problems.filter((l) => !l.includes("memcached.port"))).toEqual([]);
    });
  });
});

describe("configure with the defaults only", () => {
  const ctx = useRouter();
  it("routes", async () => {
    await ctx.flags.set("127.0.0.42");
    expect(await routeOf(ctx.router.url, { from: "127.0.0.42" })).toBe("canary");
  });
  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
