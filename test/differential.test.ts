/**
 * `gray explain` and nginx decide alike: the same vectors (IPv4, IPv6, user ids valid and not,
 * overrides, weights, ranges) go to the Lua inside nginx and to the CLI's JavaScript, and the
 * route and the rule must match on every one.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { get } from "../harness/http.ts";
import { seededRandom } from "../harness/random.ts";
import { explain, routerOptions } from "../node-src/cli/explain.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { AdminStore } from "../node-src/cli/store.ts";
import { expectCleanLog, sharedMemcached, useRouter } from "./support.ts";

const PREFIX = "d:";
const TTL_MS = 100;

/** Global states: weight and live ranges as an operator (or a typo) might leave them. */
const STATES: { weight?: string; ranges?: string }[] = [
  {},
  { weight: "10" },
  { weight: "50", ranges: "198.51.100.0/25 2001:db8:1::/64" },
  { weight: "12.345", ranges: "0.0.0.0/1, junk, ::/1" },
  { weight: "100" },
  { weight: "bogus", ranges: "203.0.113.128/25" },
];
const PER_STATE = 180;

interface Vector {
  ip: string;
  headers: [string, string][];
  cookies: [string, string][];
  flags: Record<string, string>;
}

function vectors(seed: number, count: number, used: Set<string>): Vector[] {
  const g = seededRandom(seed);
  const hex = (n: number) => n.toString(16);
  const out: Vector[] = [];
  while (out.length < count) {
    const ip = g.pick([
      () => `${g.pick([198, 203, 100, 1, 77])}.${g.int(256)}.${g.int(256)}.${g.int(256)}`,
      () => `198.51.100.${g.int(256)}`,
      () => `203.0.113.${g.int(256)}`,
      () => `2001:db8:${hex(g.int(3))}::${hex(g.int(65536))}`,
      () => `2001:DB8:1:0:0:0:${hex(g.int(65536)).toUpperCase()}:${hex(g.int(65536))}`,
      () => `::ffff:198.51.100.${g.int(256)}`,
      () => `2001:0db8:0000:0000:0000:0000:${hex(g.int(65536))}:000${g.int(10)}`,
    ])();
    const key = ip.toLowerCase();
    if (used.has(key)) continue;
    used.add(key);
    const headers: [string, string][] = [["X-Real-IP", ip]];
    const cookies: [string, string][] = [];
    const flags: Record<string, string> = {};
    const n = out.length;
    const user = g.pick([
      undefined,
      undefined,
      `u${seed}-${n}`,
      `user.${n}@example.org`,
      "bad id",
      "x".repeat(70),
      "a;b",
    ]);
    if (user !== undefined) {
      if (g.chance(0.5)) headers.push(["X-User", user]);
      else cookies.push(["uid", user]);
      if (g.chance(0.4)) flags[`${PREFIX}uid:${user}`] = g.pick(["1", "1", "0"]);
    }
    if (g.chance(0.15)) headers.push(["X-Gray", g.pick(["always", "never", "sometimes", "Always"])]);
    if (g.chance(0.1)) cookies.push(["gray", g.pick(["always", "never", "later"])]);
    if (g.chance(0.1)) cookies.push(["other", "1"]);
    if (g.chance(0.25)) flags[`${PREFIX}${ip}`] = g.pick(["1", "1", "2"]);
    out.push({ ip, headers, cookies, flags });
  }
  return out;
}

describe("explain agrees with nginx", () => {
  const ctx = useRouter({
    options: {
      // Decisions are compared, not store failures: a lookup past the default 50 ms on a busy machine would fall back to stable.
      memcached: { timeout_ms: 2000 },
      key_prefix: PREFIX,
      trusted_proxies: ["127.0.0.1"],
      override_header: "X-Gray",
      override_cookie: "gray",
      user_header: "X-User",
      user_cookie: "uid",
      ranges: ["203.0.113.0/26", "2001:db8:2::/48"],
      weight: 5,
      debug_header: "X-Gray-Route",
      cache_ttl_ms: TTL_MS,
    },
  });

  it(`on ${STATES.length * PER_STATE} vectors`, async () => {
    const store = new AdminStore(sharedMemcached().address);
    const options = routerOptions((await fetchStatus(ctx.router.statusUrl)).config);
    const used = new Set<string>();
    const disagreements: string[] = [];
    const byRule = new Map<string, number>();
    try {
      for (const [i, state] of STATES.entries()) {
        for (const [name, value] of [
          ["weight", state.weight],
          ["ranges", state.ranges],
        ] as const) {
          if (value === undefined) await store.delete(`${PREFIX}gray:${name}`);
          else await store.set(`${PREFIX}gray:${name}`, value);
        }
        await sleep(3 * TTL_MS); // the worker's copy of weight and ranges expires
        for (const v of vectors(1000 + i, PER_STATE, used)) {
          // Hostile user ids make keys with spaces, which only the binary protocol can store: memjs, not the CLI's text client.
          for (const [key, value] of Object.entries(v.flags)) await ctx.flags.set(key, value);
          const headers = [...v.headers.flat()];
          if (v.cookies.length) headers.push("Cookie", v.cookies.map(([k, val]) => `${k}=${val}`).join("; "));
          const reply = await get(ctx.router.url, { headers });
          const js = await explain(store, options, { ip: v.ip, headers: v.headers.slice(1), cookies: v.cookies });
          const lua = { route: reply.body.trim(), rule: reply.headers["x-gray-route-rule"] };
          byRule.set(js.rule, (byRule.get(js.rule) ?? 0) + 1);
          if (reply.status !== 200 || lua.route !== js.route || lua.rule !== js.rule) {
            disagreements.push(
              `${JSON.stringify({ state, ...v })}: nginx ${reply.status} ${lua.route}/${String(lua.rule)}, explain ${js.route}/${js.rule}`,
            );
          }
        }
      }
    } finally {
      store.close();
    }
    console.log(`decisions by rule: ${JSON.stringify(Object.fromEntries(byRule))}`);
    expect(disagreements.slice(0, 5)).toEqual([]);
    // Every rule was exercised, so agreement means something.
    for (const rule of ["override", "user", "ip", "range", "weight", "none"])
      expect(byRule.get(rule) ?? 0, rule).toBeGreaterThan(10);
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
