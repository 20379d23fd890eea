/**
 * The client address behind trusted proxies, held against nginx's own realip module configured
 * the same way (set_real_ip_from per trusted CIDR, real_ip_recursive on) in the same nginx.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { clientIp } from "../lua-src/gray/client_ip.ts";
import { parseCidr } from "../lua-src/gray/ip.ts";
import { get } from "../harness/http.ts";
import type { StackPorts } from "../harness/stack.ts";
import { expectCleanLog, routeOf, useRouter } from "./support.ts";

const TRUSTED = ["127.0.0.1", "127.0.0.64/26", "::1", "2001:db8:ffff::/48", "198.51.100.0/24"];

/** realip as the oracle: /xri reads X-Real-IP, /xff reads X-Forwarded-For; both answer $remote_addr. */
function realipOracle(ports: StackPorts): string[] {
  const realip = (header: string) => [...TRUSTED.map((c) => `set_real_ip_from ${c};`), `real_ip_header ${header};`, "real_ip_recursive on;"];
  return [
    "server {",
    `    listen 127.0.0.1:${ports.extra};`,
    `    listen [::1]:${ports.extra};`,
    "    default_type text/plain;",
    // A content handler, not "return": return runs in the rewrite phase, before location-level realip.
    `    location /xri { ${realip("X-Real-IP").join(" ")} content_by_lua_block { ngx.print(ngx.var.remote_addr) } }`,
    `    location /xff { ${realip("X-Forwarded-For").join(" ")} content_by_lua_block { ngx.print(ngx.var.remote_addr) } }`,
    "}",
  ];
}

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
  const ctx = useRouter({ ipv6: true, options: { trusted_proxies: TRUSTED }, httpExtra: realipOracle });
  const trusted = TRUSTED.map((c) => parseCidr(c)!);
  let oracleUrl: (from: string) => string;
  let routerUrl: (from: string) => string;

  beforeAll(() => {
    const { ports } = ctx.router;
    oracleUrl = (from) => (from === "::1" ? `http://[::1]:${ports.extra}` : `http://127.0.0.1:${ports.extra}`);
    routerUrl = (from) => (from === "::1" ? ctx.router.url6 : ctx.router.url);
  });

  /** What realip makes of the request: X-Real-IP if it moves the address, else X-Forwarded-For. */
  async function oracle(v: Vector): Promise<string> {
    const viaRealIp = (await get(`${oracleUrl(v.from)}/xri`, v)).body;
    if ("x-real-ip" in v.headers && viaRealIp !== v.from) return viaRealIp;
    return (await get(`${oracleUrl(v.from)}/xff`, v)).body;
  }

  it(`routes by the address realip finds (${vectors.length} vectors)`, async () => {
    for (const v of vectors) {
      const expected = await oracle(v);
      // The same code compiled to JavaScript agrees with nginx too.
      expect(clientIp(v.from, v.headers["x-real-ip"], v.headers["x-forwarded-for"], trusted), JSON.stringify(v)).toBe(expected);
      await ctx.flags.flush();
      await ctx.flags.set(expected);
      expect(await routeOf(routerUrl(v.from), v), `${JSON.stringify(v)} should be keyed by ${expected}`).toBe("canary");
    }
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
