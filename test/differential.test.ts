/**
 * `gray explain` and nginx decide alike: the same vectors (IPv4, IPv6, user ids valid and not,
 * overrides, weights, ranges, two canaries and one the router does not know, entries live and
 * expired, in the rules document and as per-IP seed keys) go to the Lua inside nginx and to the
 * CLI's JavaScript, and the route and the rule must match on every one.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_CANARY, type RulesDocument, emptyDocument } from "../lua-src/gray/document.ts";
import { formatAddress, parseAddress } from "../lua-src/gray/ip.ts";
import { FlagStore } from "../harness/flags.ts";
import { closeAgents, get } from "../harness/http.ts";
import { seededRandom } from "../harness/random.ts";
import { writeDocumentAsIs } from "../harness/rules.ts";
import { RouterStack, type RouterStackOptions } from "../harness/stack.ts";
import { explain, routerOptions } from "../node-src/cli/explain.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { AdminStore } from "../node-src/cli/store.ts";
import { flag, replaceRules, setWeight } from "../node-src/rules/edit.ts";
import { expectCleanLog, sharedMemcached, testRuntime, untilLoaded } from "./support.ts";

const PREFIX = "d:";
const TTL_MS = 100;
/** The canaries the router knows; "gamma" is one the document names and the router does not. */
const CANARIES = [DEFAULT_CANARY, DEFAULT_CANARY, "beta", "gamma"];

/**
 * The rules in force, one document revision each: weights and ranges per canary as an operator
 * might leave them. The first state has no document at all: the router's configured weight and
 * ranges decide.
 */
interface State {
  weights?: Record<string, number>;
  ranges?: Record<string, string[]>;
}
const STATES: (State | undefined)[] = [
  undefined,
  { weights: { canary: 10 } },
  { weights: { canary: 50 }, ranges: { canary: ["198.51.100.0/25", "2001:db8:1::/64"] } },
  { weights: { canary: 12.345, beta: 30 }, ranges: { canary: ["0.0.0.0/1"], beta: ["::/1", "198.51.100.128/25"] } },
  { weights: { canary: 100 } },
  { weights: { canary: 0, beta: 40, gamma: 20 }, ranges: { beta: ["203.0.113.128/25"], gamma: ["198.51.100.0/24"] } },
];
const PER_STATE = 180;

/** A document entry: a canary (maybe one the router does not know) and an expiry (0, later, or already past). */
interface Entry {
  subject: string;
  canary: string;
  expires: number;
}

interface Vector {
  ip: string;
  headers: [string, string][];
  cookies: [string, string][];
  /** Per-IP seed keys and their values. */
  seeds: Record<string, string>;
  entries: { kind: "ip" | "user"; entry: Entry }[];
}

/**
 * The valid id a router would match if it misread a hostile one (cut it at a space or a ';', or
 * at 64 bytes): flagged in the document, so such a misreading shows as a disagreement.
 */
const DECOYS: Record<string, string> = { "bad id": "bad", ["x".repeat(70)]: "x".repeat(64), "a;b": "a" };

function vectors(seed: number, count: number, used: Set<string>): Vector[] {
  const g = seededRandom(seed);
  const hex = (n: number) => n.toString(16);
  const now = Math.floor(Date.now() / 1000);
  const entry = (subject: string): Entry => ({
    subject,
    canary: g.pick(CANARIES),
    expires: g.pick([0, 0, now + 3600, now - 3600]),
  });
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
    // As nginx prints it: the form the document holds and a seed key must be typed in to match.
    const canonical = formatAddress(parseAddress(ip)!);
    if (used.has(canonical)) continue;
    used.add(canonical);
    const headers: [string, string][] = [["X-Real-IP", ip]];
    const cookies: [string, string][] = [];
    const seeds: Record<string, string> = {};
    const entries: Vector["entries"] = [];
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
      if (g.chance(0.4)) entries.push({ kind: "user", entry: entry(DECOYS[user] ?? user) });
    }
    if (g.chance(0.15)) headers.push(["X-Gray", g.pick(["always", "never", "sometimes", "Always", "beta", "gamma"])]);
    if (g.chance(0.1)) cookies.push(["gray", g.pick(["always", "never", "later", "beta"])]);
    if (g.chance(0.1)) cookies.push(["other", "1"]);
    // A seed key as typed (maybe not as nginx prints the address: then it never matches), valued
    // canary_value, a canary's name, or neither.
    if (g.chance(0.25)) seeds[`${PREFIX}${g.chance(0.8) ? canonical : ip}`] = g.pick(["1", "1", "2", "beta", "gamma"]);
    if (g.chance(0.2)) entries.push({ kind: "ip", entry: entry(canonical) });
    out.push({ ip, headers, cookies, seeds, entries });
  }
  return out;
}

/** The state's weights and ranges and the vectors' entries, replacing whatever the document held. */
function stateDocument(state: State, list: Vector[]) {
  return (doc: RulesDocument) => {
    replaceRules(doc, emptyDocument());
    for (const [canary, percent] of Object.entries(state.weights ?? {})) setWeight(doc, canary, percent);
    for (const [canary, cidrs] of Object.entries(state.ranges ?? {}))
      for (const cidr of cidrs) flag(doc, "range", cidr, canary, 0);
    for (const v of list) for (const { kind, entry: e } of v.entries) flag(doc, kind, e.subject, e.canary, e.expires);
  };
}

const ROUTER: Omit<RouterStackOptions, "runtime" | "memcached"> = {
  canaries: ["beta"],
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
};

describe("explain agrees with nginx", () => {
  const ctx = {} as { router: RouterStack; flags: FlagStore };
  // Not useRouter: its reset leaves an empty rules document, and the first state is no document at all.
  beforeAll(async () => {
    const memcached = sharedMemcached();
    ctx.flags = new FlagStore(memcached.address);
    await ctx.flags.flush();
    ctx.router = await RouterStack.start({ runtime: await testRuntime(), memcached, ...ROUTER });
  });
  afterAll(async () => {
    ctx.flags?.close();
    await closeAgents();
    await ctx.router?.stop();
  });

  it(`on ${STATES.length * PER_STATE} vectors`, async () => {
    const store = new AdminStore(sharedMemcached().address);
    const options = routerOptions((await fetchStatus(ctx.router.statusUrl)).config);
    const used = new Set<string>();
    const disagreements: string[] = [];
    const byRule = new Map<string, number>();
    const byRoute = new Map<string, number>();
    const ipFrom = { seed: 0, document: 0 };
    try {
      for (const [i, state] of STATES.entries()) {
        const list = vectors(1000 + i, PER_STATE, used);
        // A state without a document is the first: the router has loaded none since the store was flushed.
        if (state === undefined) expect((await fetchStatus(ctx.router.statusUrl)).document.revision).toBeNull();
        else
          await untilLoaded(
            ctx.router,
            await writeDocumentAsIs(sharedMemcached().address, PREFIX, stateDocument(state, list)),
          );
        for (const v of list) {
          // Seed keys typed as an operator might, by memjs (the binary protocol), as in the original recipe.
          for (const [key, value] of Object.entries(v.seeds)) await ctx.flags.set(key, value);
          const headers = [...v.headers.flat()];
          if (v.cookies.length) headers.push("Cookie", v.cookies.map(([k, val]) => `${k}=${val}`).join("; "));
          const reply = await get(ctx.router.url, { headers });
          const js = await explain(store, options, { ip: v.ip, headers: v.headers.slice(1), cookies: v.cookies });
          const lua = { route: reply.body.trim(), rule: reply.headers["x-gray-route-rule"] };
          byRule.set(js.rule, (byRule.get(js.rule) ?? 0) + 1);
          byRoute.set(js.route, (byRoute.get(js.route) ?? 0) + 1);
          if (js.rule === "ip") ipFrom[/seed key/.test(js.why) ? "seed" : "document"]++;
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
    console.log(
      `decisions by route: ${JSON.stringify(Object.fromEntries(byRoute))}, IP rule from ${JSON.stringify(ipFrom)}`,
    );
    expect(disagreements.slice(0, 5)).toEqual([]);
    // Every rule was exercised, so agreement means something.
    for (const rule of ["override", "user", "ip", "range", "weight", "none"])
      expect(byRule.get(rule) ?? 0, rule).toBeGreaterThan(10);
    for (const route of ["stable", "canary", "beta"]) expect(byRoute.get(route) ?? 0, route).toBeGreaterThan(10);
    expect(ipFrom.seed, "IPs flagged by seed keys").toBeGreaterThan(10);
    expect(ipFrom.document, "IPs flagged in the document").toBeGreaterThan(10);
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
