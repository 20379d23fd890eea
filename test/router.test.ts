/** Routing by per-IP flags in memcached, clients told apart by their loopback source address. */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { get } from "../harness/http.ts";
import { type RouteCase, expectCleanLog, routeOf, runCase, useRouter } from "./support.ts";
import { PATTERNS } from "../node-src/nginx-conf.ts";

// Every case runs through both drop-in patterns: route_upstream() + proxy_pass, and route() + ngx.exec.
describe.each(PATTERNS)("%s pattern", (pattern) => {
  // A conf written for the IP-only router (no lua_shared_dict): every request asks memcached, so a change shows on the next request.
  describe("default options, no lua_shared_dict", () => {
    const ctx = useRouter({ pattern, ipv6: true, noCacheDict: true });

    const cases: RouteCase[] = [
      { name: "unflagged client goes to stable", request: { from: "127.0.0.2" }, expect: "stable" },
      { name: "flagged client goes to canary", flags: ["127.0.0.3"], request: { from: "127.0.0.3" }, expect: "canary" },
      {
        name: "another client's flag changes nothing",
        flags: ["127.0.0.4"],
        request: { from: "127.0.0.5" },
        expect: "stable",
      },
      {
        name: "a value other than canary_value is stable",
        flags: { "127.0.0.6": "0" },
        request: { from: "127.0.0.6" },
        expect: "stable",
      },
      {
        name: "a value that only starts with canary_value is stable",
        flags: { "127.0.0.7": "10" },
        request: { from: "127.0.0.7" },
        expect: "stable",
      },
      { name: "IPv6 client, key typed as nginx prints it", flags: ["::1"], request: { from: "::1" }, expect: "canary" },
      { name: "IPv6 client unflagged", request: { from: "::1" }, expect: "stable" },
      {
        name: "headers from an untrusted peer are ignored",
        flags: ["203.0.113.9"],
        request: { from: "127.0.0.8", headers: { "x-real-ip": "203.0.113.9", "x-forwarded-for": "203.0.113.9" } },
        expect: "stable",
      },
    ];
    for (const c of cases) {
      it(c.name, async () => {
        await runCase(c.request?.from === "::1" ? ctx.router.url6 : ctx.router.url, ctx.flags, c);
      });
    }

    it("a removed flag goes back to stable on the next request", async () => {
      await ctx.flags.set("127.0.0.10");
      expect(await routeOf(ctx.router.url, { from: "127.0.0.10" })).toBe("canary");
      await ctx.flags.delete("127.0.0.10");
      expect(await routeOf(ctx.router.url, { from: "127.0.0.10" })).toBe("stable");
    });

    it("a flag with a TTL expires", async () => {
      await ctx.flags.set("127.0.0.11", "1", 1);
      expect(await routeOf(ctx.router.url, { from: "127.0.0.11" })).toBe("canary");
      // memcached expires a 1 s item once its clock has moved past it: up to 2 s later.
      const deadline = Date.now() + 4000;
      let route = "canary";
      while (route === "canary" && Date.now() < deadline) {
        await sleep(250);
        route = await routeOf(ctx.router.url, { from: "127.0.0.11" });
      }
      expect(route).toBe("stable");
    });

    it("many distinct clients each get their own decision", async () => {
      const flagged = new Set<string>();
      for (let i = 1; i <= 40; i++) if (i % 3 === 0) flagged.add(`127.0.1.${i}`);
      for (const ip of flagged) await ctx.flags.set(ip);
      for (let i = 1; i <= 40; i++) {
        const ip = `127.0.1.${i}`;
        expect(await routeOf(ctx.router.url, { from: ip }), ip).toBe(flagged.has(ip) ? "canary" : "stable");
      }
    });

    it("carries no decision header unless asked", async () => {
      const reply = await get(ctx.router.url, { from: "127.0.0.12" });
      expect(reply.headers["x-gray-route"]).toBeUndefined();
    });

    it("leaves error.log clean", () => expectCleanLog(ctx.router));
  });

  describe("configured options", () => {
    const ctx = useRouter({
      pattern,
      options: {
        key_prefix: "gray:ip:",
        canary_value: "yes",
        debug_header: "X-Gray-Route",
        memcached: { timeout_ms: 100, pool_size: 4, keepalive_ms: 10000 },
      },
    });

    const cases: RouteCase[] = [
      {
        name: "key_prefix is prepended to the IP",
        flags: { "gray:ip:127.0.0.20": "yes" },
        request: { from: "127.0.0.20" },
        expect: "canary",
      },
      {
        name: "the bare IP key is not read when a prefix is set",
        flags: { "127.0.0.21": "yes" },
        request: { from: "127.0.0.21" },
        expect: "stable",
      },
      {
        name: "canary_value is compared exactly",
        flags: { "gray:ip:127.0.0.22": "1" },
        request: { from: "127.0.0.22" },
        expect: "stable",
      },
    ];
    for (const c of cases) it(c.name, () => runCase(ctx.router.url, ctx.flags, c));

    it("debug_header carries the decision", async () => {
      await ctx.flags.set("gray:ip:127.0.0.23", "yes");
      expect((await get(ctx.router.url, { from: "127.0.0.23" })).headers["x-gray-route"]).toBe("canary");
      expect((await get(ctx.router.url, { from: "127.0.0.24" })).headers["x-gray-route"]).toBe("stable");
    });

    it("leaves error.log clean", () => expectCleanLog(ctx.router));
  });
});
