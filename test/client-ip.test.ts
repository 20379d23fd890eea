/**
 * The client address behind trusted proxies, held against nginx's own realip module configured
 * the same way (set_real_ip_from per trusted CIDR, real_ip_recursive on) in the same nginx.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { clientIp } from "../lua-src/gray/client_ip.ts";
import { parseCidr } from "../lua-src/gray/ip.ts";
import { realipAddress, realipOracle } from "../harness/realip.ts";
import { expectCleanLog, routeOf, useRouter } from "./support.ts";

const TRUSTED = ["127.0.0.1", "127.0.0.64/26", "::1", "2001:db8:ffff::/48", "198.51.100.0/24"];

const PEERS = ["127.0.0.1", "127.0.0.70", "127.0.0.2", "::1"];
const VALUES = [
  "203.0.113.5",
  "203.0.113.5, 198.51.100.7",
  "192.0.2.1, 203.0.113.5, 198.51.100.7, 198.51.100.8",
  "203.0.113.5,198.51.100.7 ,  ",
  " , ,203.0.113.5",
  "198.51.100.7, 198.51.100.8",
  "garbage",
  "300.1.1.1",
  "1.2.3",
  "01.02.03.004",
  "1..2.3",
  "255.255.255.255",
  "0.0.0.0",
  "203.0.113.5:443",
  "203.0.113.5:0",
  "203.0.113.5:99999",
  "2001:DB8:0:0::1",
  "2001:db8:0:0:1:0:0:1",
  "[2001:db8::1]:8080",
  "[2001:db8::1]",
  "::ffff:203.0.113.5",
  "::ffff:198.51.100.9, 203.0.113.5",
  "2001:db8::5, 2001:db8:ffff::1, 2001:db8:ffff::2",
  "fe80::1%eth0",
  ":1::",
  "::",
  "::0.0.1.2",
  "1:2:3:4:5:6:7:8:9",
  "1.2.3.4 5.6.7.8",
  ",",
  "\t203.0.113.5",
  "198.51.100.1, ".repeat(40) + "203.0.113.77",
  "a".repeat(3000),
];

interface Vector {
  from: string;
  headers: Record<string, string>;
}

const vectors: Vector[] = [];
for (const from of PEERS) {
  for (const value of VALUES) {
    vectors.push({ from, headers: { "x-forwarded-for": value } });
    vectors.push({ from, headers: { "x-real-ip": value } });
  }
  // X-Real-IP wins when it yields an address; X-Forwarded-For is the fallback when it does not.
  vectors.push({ from, headers: { "x-real-ip": "203.0.113.50", "x-forwarded-for": "203.0.113.60" } });
  vectors.push({ from, headers: { "x-real-ip": "nonsense", "x-forwarded-for": "203.0.113.60" } });
}

describe("client IP behind trusted proxies, against nginx's realip", () => {
  const ctx = useRouter({ ipv6: true, options: { trusted_proxies: TRUSTED }, httpExtra: realipOracle(TRUSTED) });
  const trusted = TRUSTED.map((c) => parseCidr(c)!);
  let routerUrl: (from: string) => string;

  beforeAll(() => {
    routerUrl = (from) => (from === "::1" ? ctx.router.url6 : ctx.router.url);
  });

  const oracle = (v: Vector) => realipAddress(ctx.router.ports, v, "x-real-ip" in v.headers);

  it(`routes by the address realip finds (${vectors.length} vectors)`, async () => {
    for (const v of vectors) {
      const expected = await oracle(v);
      // The same code compiled to JavaScript agrees with nginx too.
      expect(clientIp(v.from, v.headers["x-real-ip"], v.headers["x-forwarded-for"], trusted), JSON.stringify(v)).toBe(
        expected,
      );
      await ctx.flags.flush();
      await ctx.flags.set(expected);
      expect(await routeOf(routerUrl(v.from), v), `${JSON.stringify(v)} should be keyed by ${expected}`).toBe("canary");
    }
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
