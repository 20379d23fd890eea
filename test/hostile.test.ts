/** Hostile header values through a trusted proxy: always 200, never a Lua error, never a stray command to memcached. */
import { describe, expect, it } from "vitest";
import { get } from "../harness/http.ts";
import { expectCleanLog, routeOf, useRouter } from "./support.ts";

const HOSTILE = [
  "garbage",
  "300.1.1.1",
  "1.2.3.4.5",
  "-1.2.3.4",
  "0x7f.0.0.1",
  "0177.0.0.1",
  "1.2.3.4 flush_all",
  "flush_all",
  "get 127.0.0.1",
  "delete 127.0.0.99",
  "set 127.0.0.1 0 0 1",
  "127.0.0.1 127.0.0.99",
  "::::::::",
  "[::1",
  "[::1]:",
  "[]:80",
  "1:2:3:4:5:6:7:8:9:10",
  "%00",
  "x".repeat(3 * 1024),
  "1.2.3.4, ".repeat(300),
  " ",
  ",,,,",
];

describe("hostile headers from a trusted proxy", () => {
  const ctx = useRouter({ ipv6: true, options: { trusted_proxies: ["127.0.0.0/8", "::1"] } });

  it("answer 200 with a route, and flush/delete text reaches memcached as no command", async () => {
    await ctx.flags.set("127.0.0.99");
    for (const value of HOSTILE) {
      for (const name of ["x-real-ip", "x-forwarded-for"]) {
        const reply = await get(ctx.router.url, { from: "127.0.0.98", headers: { [name]: value } });
        expect(reply.status, `${name}: ${value.slice(0, 40)}`).toBe(200);
        expect(["stable", "canary"]).toContain(reply.body.trim());
      }
    }
    expect(await ctx.flags.get("127.0.0.99")).toBe("1");
    expect(await routeOf(ctx.router.url, { from: "127.0.0.99" })).toBe("canary");
  });

  it("a value with no address in it leaves the peer as the client", async () => {
    // Values like "delete 127.0.0.99" do hold an address, which a trusted proxy may name: not these.
    const noAddress = HOSTILE.filter((v) => !/\d+\.\d+\.\d+\.\d+|::/.test(v));
    expect(noAddress.length).toBeGreaterThan(5);
    for (const value of noAddress) {
      expect(
        await routeOf(ctx.router.url, { from: "127.0.0.98", headers: { "x-real-ip": value } }),
        value.slice(0, 40),
      ).toBe("stable");
    }
  });

  it("many headers (150 X-Forwarded-For lines) answer 200", async () => {
    const headers: string[] = [];
    for (let i = 0; i < 150; i++) headers.push("X-Forwarded-For", `198.51.100.${i % 250}`);
    for (let i = 0; i < 50; i++) headers.push(`X-Junk-${i}`, "y".repeat(50));
    const reply = await get(ctx.router.url, { from: "127.0.0.98", headers });
    expect(reply.status).toBe(200);
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
