/**
 * What only the variable pattern has: the upstream names, and the mistakes configure() cannot see
 * because they are in the conf around it (the `set`, the proxy_pass, the upstream {} blocks).
 */
import { describe, expect, it } from "vitest";
import { get } from "../harness/http.ts";
import { RouterStack } from "../harness/stack.ts";
import { expectCleanLog, routeOf, sharedMemcached, testRuntime, useRouter } from "./support.ts";

const SET_LINE = 'set $gray_upstream "";';

describe("stable_upstream and canary_upstream name the upstream {} blocks", () => {
  const ctx = useRouter({
    pattern: "upstream",
    options: { stable_upstream: "app_v1", canary_upstream: "app_v2", debug_header: "X-Gray-Route" },
    // The stack's backends under other names: stable answers "stable", canary "canary".
    httpExtra: (ports) => [
      `upstream app_v1 { server 127.0.0.1:${ports.stable}; keepalive 8; }`,
      `upstream app_v2 { server 127.0.0.1:${ports.canary}; keepalive 8; }`,
    ],
  });

  it("routes a flagged client to canary_upstream and the rest to stable_upstream", async () => {
    await ctx.flags.set("127.0.6.1");
    expect(await routeOf(ctx.router.url, { from: "127.0.6.1" })).toBe("canary");
    expect(await routeOf(ctx.router.url, { from: "127.0.6.2" })).toBe("stable");
  });

  it("sets the same debug headers as route()", async () => {
    await ctx.flags.set("127.0.6.3");
    const reply = await get(ctx.router.url, { from: "127.0.6.3" });
    expect(reply.headers["x-gray-route"]).toBe("canary");
    expect(reply.headers["x-gray-route-rule"]).toBe("ip");
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});

describe("mistakes in the conf around the router", () => {
  it("$gray_upstream used without set: nginx refuses the conf at load", async () => {
    const start = RouterStack.start({
      runtime: await testRuntime(),
      memcached: sharedMemcached(),
      pattern: "upstream",
      handEdit: (conf) => conf.replace(SET_LINE, ""),
    });
    await expect(start).rejects.toThrow('unknown "gray_upstream" variable');
  });

  it("route_upstream() where the variable is never declared: one error line per worker, no traceback, requests served", async () => {
    const router = await RouterStack.start({
      runtime: await testRuntime(),
      memcached: sharedMemcached(),
      pattern: "upstream",
      workers: 2,
      reuseport: true,
      // A location that calls route_upstream() but proxies to a fixed upstream, and no set anywhere.
      handEdit: (conf) =>
        conf.replace(SET_LINE, "").replace("proxy_pass http://$gray_upstream;", "proxy_pass http://client;"),
    });
    try {
      for (let i = 0; i < 40; i++) {
        const reply = await get(router.url, { from: `127.0.6.${10 + (i % 20)}`, fresh: true });
        expect(reply.status).toBe(200);
        expect(reply.body.trim()).toBe("stable");
      }
      const log = router.errorLog();
      const lines = log.split("\n").filter((l) => l.includes("[error]"));
      expect(lines.length).toBeGreaterThanOrEqual(1);
      expect(lines.length).toBeLessThanOrEqual(2);
      for (const line of lines)
        expect(line).toContain('cannot set $gray_upstream, which this conf never declares: add set $gray_upstream "";');
      expect(log).not.toContain("stack traceback");
    } finally {
      await router.stop();
    }
  });

  it("an upstream name with no upstream {} block: 502 for that route only", async () => {
    const router = await RouterStack.start({
      runtime: await testRuntime(),
      memcached: sharedMemcached(),
      pattern: "upstream",
      options: { canary_upstream: "no_such_upstream", override_header: "X-Gray" },
    });
    try {
      expect((await get(router.url, { from: "127.0.6.40", headers: ["X-Gray", "always"] })).status).toBe(502);
      expect(await routeOf(router.url, { from: "127.0.6.41" })).toBe("stable");
    } finally {
      await router.stop();
    }
  });
});
