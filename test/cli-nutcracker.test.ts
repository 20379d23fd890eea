/**
 * Every command through twemproxy (Debian's nutcracker 0.5.0) in front of two memcached, with the
 * router reading through the same proxy: what the CLI writes is read back through the proxy and
 * found on exactly one of the two servers, and routes; `gray list`, which needs a command the
 * proxy does not forward, exits 1 and says why.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FlagStore } from "../harness/flags.ts";
import { gray } from "../harness/gray-cli.ts";
import { closeAgents } from "../harness/http.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { NutcrackerServer } from "../harness/nutcracker.ts";
import { RouterStack } from "../harness/stack.ts";
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

  it("add and remove an IP: written through the proxy, on one server, routed", async () => {
    expect(await ok(["add", "127.0.0.77"])).toBe("flagged 127.0.0.77 (key 127.0.0.77)\n");
    expect(await readBack("127.0.0.77")).toEqual({ proxied: "1", holders: 1 });
    await untilRoute(router.url, "127.0.0.77", "canary", 2000);
    expect(await ok(["remove", "127.0.0.77"])).toBe("unflagged 127.0.0.77\n");
    expect(await readBack("127.0.0.77")).toEqual({ proxied: undefined, holders: 0 });
    expect(await ok(["remove", "127.0.0.77"])).toBe("127.0.0.77 was not flagged\n");
    await untilRoute(router.url, "127.0.0.77", "stable", 2000);
  });

  it("add and remove ranges", async () => {
    await ok(["add", "127.0.78.0/24", "198.51.100.0/24"]);
    expect(await readBack("gray:ranges")).toEqual({ proxied: "127.0.78.0/24 198.51.100.0/24", holders: 1 });
    await untilRoute(router.url, "127.0.78.9", "canary", 2000);
    await ok(["remove", "127.0.78.0/24", "198.51.100.0/24"]);
    expect(await readBack("gray:ranges")).toEqual({ proxied: undefined, holders: 0 });
  });

  it("add-user and remove-user", async () => {
    await ok(["add-user", "tess", "--ttl", "600"]);
    expect(await readBack("uid:tess")).toEqual({ proxied: "1", holders: 1 });
    expect(await routeOf(router.url, { from: "127.0.79.1", headers: { "X-User": "tess" } })).toBe("canary");
    expect(await ok(["remove-user", "tess"])).toBe("unflagged user tess\n");
    expect(await readBack("uid:tess")).toEqual({ proxied: undefined, holders: 0 });
  });

  it("weight: set, shown, read back", async () => {
    expect(await ok(["weight", "30"])).toBe("weight 30 % (was not set)\n");
    expect(await ok(["weight"])).toBe("weight 30 %\n");
    expect(await readBack("gray:weight")).toEqual({ proxied: "30", holders: 1 });
    expect(await ok(["weight", "0"])).toBe("weight 0 % (was 30 %)\n");
    expect(await readBack("gray:weight")).toEqual({ proxied: "0", holders: 1 });
  });

  it("explain and status read through it", async () => {
    await ok(["add", "127.0.0.78"]);
    const e = JSON.parse(await ok(["explain", "127.0.0.78", "--url", router.statusUrl, "--json"])) as unknown;
    expect(e).toMatchObject({ route: "canary", rule: "ip" });
    const status = await ok(["status", "--url", router.statusUrl]);
    expect(status).toMatch(new RegExp(`memcached ${proxy.address.replace(/\./g, "\\.")}`));
    expect(status).toMatch(/^canary\s+\d+/m);
  });

  it("release walks the weight up through it", async () => {
    const out = await ok(["release", "--steps", "10,100", "--interval", "1s", "--status-url", router.statusUrl]);
    expect(out.trim().split("\n").at(-1)).toBe("released: weight 100 %");
    expect(await readBack("gray:weight")).toEqual({ proxied: "100", holders: 1 });
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

  it("list exits 1 and says why: the proxy does not forward lru_crawler metadump", async () => {
    await ok(["add", "127.0.0.79"]);
    const r = await gray(["list"], env());
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(
      `memcached at ${proxy.address}: lru_crawler metadump all: keys not listed: it closed the connection without answering`,
    );
    expect(lines[0]).toContain("a proxy such as twemproxy does not forward it");
  });
});
