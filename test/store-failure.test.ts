/** The store failing: stopped, paused, back again. Users never get an error: cached clients keep their route, the rest get stable. */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { get } from "../harness/http.ts";
import { LATENCY_BOUND_MS, TIMEOUT_MS } from "../harness/chaos.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { PATTERNS } from "../node-src/nginx-conf.ts";
import { expectRateLimitedWarnings, routeOf, untilRoute, useOwnStore } from "./support.ts";

// Every case runs through both drop-in patterns: route_upstream() + proxy_pass, and route() + ngx.exec.
describe.each(PATTERNS)("%s pattern", (pattern) => {
  describe("store failures fall open to stable", () => {
    const ctx = useOwnStore({ pattern, options: { memcached: { timeout_ms: TIMEOUT_MS } } });

    it("routes a flagged client to canary while the store is up", async () => {
      await ctx.flags.set("127.0.0.50");
      expect(await routeOf(ctx.router.url, { from: "127.0.0.50" })).toBe("canary");
    });

    it("answers 200, fast, while ctx.memcached is paused (SIGSTOP): cached clients keep their route, new ones get stable", async () => {
      await ctx.memcached.pause();
      try {
        for (let i = 0; i < 30; i++) {
          for (const [from, want] of [
            ["127.0.0.50", "canary"],
            [`127.0.0.${70 + (i % 10)}`, "stable"],
          ]) {
            const reply = await get(ctx.router.url, { from });
            expect(reply.status).toBe(200);
            expect(reply.body.trim(), from).toBe(want);
            expect(reply.ms).toBeLessThan(LATENCY_BOUND_MS);
          }
        }
      } finally {
        await ctx.memcached.resume();
      }
    });

    it("routes by the flag again within 1 s of the store answering", async () => {
      expect(await untilRoute(ctx.router.url, "127.0.0.50", "canary", 1000)).toBeLessThan(1000);
    });

    it("answers 200 from stable while ctx.memcached is stopped", async () => {
      await ctx.memcached.stop();
      const replies = await Promise.all(
        Array.from({ length: 50 }, (_, i) => get(ctx.router.url, { from: `127.0.0.${60 + (i % 10)}` })),
      );
      expect(replies.map((r) => r.status)).toEqual(replies.map(() => 200));
      expect(new Set(replies.map((r) => r.body.trim()))).toEqual(new Set(["stable"]));
    });

    it("routes by ctx.flags again within 1 s of ctx.memcached coming back", async () => {
      await ctx.memcached.startAgain();
      await ctx.flags.set("127.0.0.51");
      expect(await untilRoute(ctx.router.url, "127.0.0.51", "canary", 1000)).toBeLessThan(1000);
    });

    it("counts each lookup once, and the failures apart from them", async () => {
      await sleep(1100); // counters reach the dict once a second
      const s = await fetchStatus(ctx.router.statusUrl);
      // Weight 0, no ranges, no user rule: every decision took exactly one flag lookup.
      const decisions = Object.values(s.rules).reduce((a, b) => a + b, 0);
      expect(s.store.hits + s.store.misses + s.store.fallbacks).toBe(decisions);
      expect(s.store.fallbacks).toBeGreaterThan(0);
      expect(s.store_errors.lookup).toBeGreaterThan(0);
      expect(s.store_errors.lookup).toBeLessThanOrEqual(s.store.fallbacks);
    });

    it("logs the failures as rate-limited warnings, not errors per request", () => {
      // Two failure episodes about a second apart: at most one warning per 5 s per worker.
      expectRateLimitedWarnings(ctx.router, 2);
    });
  });
});
