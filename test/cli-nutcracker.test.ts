/**
 * Every command through twemproxy (Debian's nutcracker 0.5.0) in front of two memcached, with the
 * router reading through the same proxy: what the CLI writes (a new revision of the rules
 * document) is read back through the proxy, its pointer found on exactly one of the two servers,
 * and routes; `gray list` reads the document, so it works through a proxy too.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FlagStore } from "../harness/flags.ts";
import { setTimeout as sleep } from "node:timers/promises";
import { gray, spawnGray } from "../harness/gray-cli.ts";
import { Load, loopbackClients } from "../harness/load.ts";
import { closeAgents } from "../harness/http.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { NutcrackerServer } from "../harness/nutcracker.ts";
import { RouterStack } from "../harness/stack.ts";
import { editDocument, readRules } from "../harness/rules.ts";
import type { Listing } from "../node-src/cli/commands/list.ts";
import { AdminStore } from "../node-src/cli/store.ts";
import { routeOf, testRuntime, untilRoute } from "./support.ts";

describe("the CLI through twemproxy", () => {
  let servers: MemcachedServer[] = [];
  let proxy: NutcrackerServer;
  let router: RouterStack;
  const env = () => ({ GRAY_MEMCACHED: proxy.address });

  beforeAll(async () => {
    const runtime = await testRuntime();
    servers = [await MemcachedServer.start(runtime), await MemcachedServer.start(runtime)];
    proxy = await NutcrackerServer.start(runtime, servers);
    router = await RouterStack.start({
      runtime,
      memcached: proxy,
      options: { user_header: "X-User", cache_ttl_ms: 100 },
    });
  });
  beforeEach(async () => {
    for (const s of servers) {
      const flags = new FlagStore(s.address);
      await flags.flush();
      flags.close();
    }
    // A document to edit (the CLI would otherwise wait for a router to restore one, then ask for --init).
    // force: the router may write its revision back between the two flushes, and the second flush
    // take every copy of a chunk its surviving pointer names; start over from an empty one then.
    await editDocument(proxy.address, "", "start", () => undefined, true);
  });
  afterAll(async () => {
    await closeAgents();
    await router?.stop();
    await proxy?.stop();
    for (const s of servers) await s.stop();
  });

  /** The value through the proxy, and on which servers behind it the key is. */
  async function readBack(key: string): Promise<{ proxied: string | undefined; holders: number }> {
    const stores = [proxy, ...servers].map((s) => new AdminStore(s.address));
    try {
      const [proxied, ...direct] = await Promise.all(stores.map((s) => s.get(key)));
      for (const d of direct) if (d !== undefined) expect(d).toBe(proxied);
      return { proxied, holders: direct.filter((d) => d !== undefined).length };
    } finally {
      for (const s of stores) s.close();
    }
  }

  async function ok(args: string[]): Promise<string> {
    const r = await gray(args, env());
    expect(r.stderr, args.join(" ")).toBe("");
    expect(r.code, args.join(" ")).toBe(0);
    return r.stdout;
  }

  /** The document as read through the proxy; its pointer is on exactly one server. */
  async function doc() {
    expect(await readBack("gray:rules")).toMatchObject({ holders: 1 });
    return (await readRules(proxy.address))!;
  }

  it("add and remove an IP: written through the proxy, routed", async () => {
    expect(await ok(["add", "127.0.0.77"])).toMatch(/^flagged 127\.0\.0\.77 for canary\nrevision \d+\n$/);
    expect((await doc()).ips).toEqual({ "127.0.0.77": "canary" });
    await untilRoute(router.url, "127.0.0.77", "canary", 2000);
    expect(await ok(["remove", "127.0.0.77"])).toMatch(/^unflagged 127\.0\.0\.77\nrevision \d+\n$/);
    expect((await doc()).ips).toEqual({});
    expect(await ok(["remove", "127.0.0.77"])).toMatch(/^127\.0\.0\.77 was not flagged\nunchanged \(revision \d+\)\n$/);
    await untilRoute(router.url, "127.0.0.77", "stable", 2000);
  });

  it("add and remove ranges", async () => {
    await ok(["add", "127.0.78.0/24", "198.51.100.0/24"]);
    expect((await doc()).ranges).toEqual({ "127.0.78.0/24": "canary", "198.51.100.0/24": "canary" });
    await untilRoute(router.url, "127.0.78.9", "canary", 2000);
    await ok(["remove", "127.0.78.0/24", "198.51.100.0/24"]);
    expect((await doc()).ranges).toEqual({});
    await untilRoute(router.url, "127.0.78.9", "stable", 2000);
  });

  it("add-user and remove-user", async () => {
    await ok(["add-user", "tess", "--ttl", "600"]);
    expect((await doc()).users).toEqual({ tess: "canary" });
    // Routers load a new revision within cache_ttl_ms (100 ms here).
    const deadline = Date.now() + 2000;
    while ((await routeOf(router.url, { from: "127.0.79.1", headers: { "X-User": "tess" } })) !== "canary")
      expect(Date.now()).toBeLessThan(deadline);
    expect(await ok(["remove-user", "tess"])).toMatch(/^unflagged user tess\n/);
    expect((await doc()).users).toEqual({});
  });

  it("weight: set, shown, read back", async () => {
    expect(await ok(["weight", "30"])).toMatch(/^canary weight 30 % \(was 0 %\), revision \d+\n$/);
    expect(await ok(["weight"])).toBe("canary  30 %\nstable  70 % (what no canary holds)\n");
    expect((await doc()).canaries.canary!.buckets).toEqual([0, 30_000]);
    expect(await ok(["weight", "0"])).toMatch(/^canary weight 0 % \(was 30 %\)/);
    expect((await doc()).canaries.canary!.buckets).toEqual([]);
  });

  it("explain and status read through it", async () => {
    await ok(["add", "127.0.0.78"]);
    await untilRoute(router.url, "127.0.0.78", "canary", 2000);
    const e = JSON.parse(await ok(["explain", "127.0.0.78", "--url", router.statusUrl, "--json"])) as unknown;
    expect(e).toMatchObject({ route: "canary", rule: "ip" });
    const status = await ok(["status", "--url", router.statusUrl]);
    expect(status).toMatch(new RegExp(`memcached ${proxy.address.replace(/\./g, "\\.")}`));
    expect(status).toMatch(/^canary\s+\d+/m);
  });

  it("release walks the weight up through it, its state under gray:release steered through it too", async () => {
    const load = Load.start({ url: router.url, sources: loopbackClients(64, 100), durationMs: 30_000 });
    const args = ["release", "--steps", "10,100", "--interval", "3s", "--min-requests", "20", "--p99-floor-ms", "100"];
    const run = spawnGray([...args, "--status-url", router.statusUrl], env());
    const deadline = Date.now() + 10_000;
    while (!(await ok(["release", "show"])).includes("step 1/2") && Date.now() < deadline) await sleep(100);
    expect(await ok(["release", "show"])).toMatch(/^release of canary by \S+ \(pid \d+\), step 1\/2 at weight 10 %/);
    const r = await run.done;
    await load.stop();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n").at(-1)).toBe("released: canary at weight 100 %");
    expect((await doc()).canaries.canary!.buckets).toEqual([0, 100_000]);
    expect((await ok(["release", "show"])).trim()).toBe("no release running");
  });

  it("forwards what the rules snapshot will need: gets and cas, add, touch, version", async () => {
    const store = new AdminStore(proxy.address);
    try {
      expect(await store.add("k:snap", "v1")).toBe(true);
      const first = await store.gets("k:snap");
      expect(first?.value).toBe("v1");
      expect(await store.cas("k:snap", "v2", first!.cas)).toBe("stored");
      expect(await store.cas("k:snap", "v3", first!.cas)).toBe("exists");
      expect(await store.touch("k:snap", 600)).toBe(true);
      expect(await store.version()).toMatch(/^\d+\.\d+/);
    } finally {
      store.close();
    }
    expect(await readBack("k:snap")).toEqual({ proxied: "v2", holders: 1 });
  });

  it("list reads the document through it", async () => {
    await ok(["add", "127.0.0.79"]);
    const listed = JSON.parse(await ok(["list", "--json"])) as Listing;
    expect(listed.canaries.canary!.ips).toEqual([{ subject: "127.0.0.79", expires: null }]);
  });
});
