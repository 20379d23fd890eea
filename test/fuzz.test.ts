/**
 * The header/cookie fuzzer: GRAY_FUZZ_REQUESTS (default 20,000) generated requests (harness/fuzz.ts:
 * X-Real-IP, X-Forwarded-For chains in every spelling, user ids and cookies huge, unicode, binary
 * or memcached command text, overrides, more than 100 headers) from trusted and untrusted loopback
 * peers, against a router whose memcached sits behind a recording proxy, with rules in a rules
 * document (users, IPs, ranges, weights of two canaries and one the router does not know) and in
 * per-IP seed keys. Properties, per request:
 * - 200, from the route and by the rule `gray explain`'s code gives for the document, the seed keys,
 *   the peer and the headers;
 * - from a trusted peer, the client address is the one nginx's realip module finds;
 * - from an untrusted peer, the route is the peer's own: spoofed headers change nothing;
 * and over the run: no Lua error in error.log, and every command memcached got is one the router
 * may send, with keys it may ask (`<prefix><ip as nginx prints it>` a request could make it ask,
 * and, from the rules timer, the pointer `<prefix>gray:rules` and the chunks of revisions written,
 * each with its copies `~1:` and `~2:`): never a user id, never a 0.1 per-rule key, seen from
 * memcached's side of the wire.
 * GRAY_FUZZ_SEED replays a run; the seed is printed.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FUZZ_CANARIES, type FuzzRequest, fuzzRequests, fuzzSeed, fuzzWorld } from "../harness/fuzz.ts";
import { closeAgents, get } from "../harness/http.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { logProblems } from "../harness/nginx.ts";
import { realipAddress, realipOracle } from "../harness/realip.ts";
import { editDocument } from "../harness/rules.ts";
import { RouterStack } from "../harness/stack.ts";
import { TcpProxy } from "../harness/tcp-proxy.ts";
import { clientIp } from "../lua-src/gray/client_ip.ts";
import { chunkKey, copyKeys, emptyDocument, parsePointer, pointerKey } from "../lua-src/gray/document.ts";
import { formatAddress, forwardedAddress, parseAddress, parseCidr } from "../lua-src/gray/ip.ts";
import type { RouterOptions } from "../lua-src/gray/options.ts";
import { explain, routerOptions } from "../node-src/cli/explain.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { AdminStore } from "../node-src/cli/store.ts";
import { flag, replaceRules, setWeight } from "../node-src/rules/edit.ts";
import { storeWarnings, testRuntime, untilLoaded } from "./support.ts";

const SEED = fuzzSeed();
const REQUESTS = Number(process.env.GRAY_FUZZ_REQUESTS ?? 20000);
const CONCURRENCY = 32;
const TTL_MS = 300;
const PREFIX = "fz:";
const NAMES = {
  key_prefix: PREFIX,
  override_header: "X-Gray",
  override_cookie: "gray",
  user_header: "X-User-Id",
  user_cookie: "uid",
};
/** 127.0.1.0/25 are the trusted loopback peers; the chains' proxies are in the other two. */
const TRUSTED = ["127.0.1.0/25", "198.51.100.0/24", "2001:db8:ffff::/48"];
const TRUSTED_CIDRS = TRUSTED.map((c) => parseCidr(c)!);
/** Trust in everyone: what a spoofing peer would get from a router that believed it. */
const EVERYONE = [parseCidr("0.0.0.0/0")!, parseCidr("::/0")!];

/**
 * The states the run goes through: none (no document: the router's configured weight and ranges),
 * then rules documents with the world's users and IPs and these weights and ranges per canary.
 */
interface State {
  weights: Record<string, number>;
  ranges: Record<string, string[]>;
}
const STATES: (State | undefined)[] = [
  undefined,
  { weights: { canary: 30, beta: 10 }, ranges: { canary: ["192.0.2.0/25", "2001:db8:1::/64"] } },
  {
    weights: { canary: 12.5, gamma: 50 },
    ranges: { beta: ["203.0.113.128/25"], canary: ["::ffff:192.0.2.0/120"], gamma: ["192.0.2.0/24"] },
  },
];

/** The pointer and its copies (~1:gray:rules, ~2:gray:rules). */
const POINTER_KEYS = copyKeys(pointerKey(PREFIX));
/** A chunk key as the format names them: <prefix>gray:rules:<revision>:<nonce>:<index>, or a copy's (<prefix>~1:gray:rules:...). */
const CHUNK_KEY = /^(~[12]:)?gray:rules:\d{1,15}:[A-Za-z0-9]{1,16}:\d+$/;

/** Why a key seen by memcached is not one the router may ask for; undefined when it is. Independent of the router's code. */
function keyProblem(key: string): string | undefined {
  if (Buffer.byteLength(key, "latin1") > 250) return "longer than memcached's 250 bytes";
  if (!key.startsWith(PREFIX)) return "without the key prefix";
  const rest = key.slice(PREFIX.length);
  // The pointer's copies and chunks, and the running release's state (read with the pointer for /gray/status).
  if (/^(~[12]:)?gray:rules$/.test(rest) || CHUNK_KEY.test(rest) || rest === "gray:release") return undefined;
  if (rest.startsWith("uid:") || rest.startsWith("gray:")) return "a 0.1 per-rule key the router no longer reads";
  const addr = parseAddress(rest);
  return addr !== undefined && formatAddress(addr) === rest ? undefined : "not an address as nginx prints it";
}

/**
 * A command line the router may send: get with one or more keys (seed keys, the pointer, chunks),
 * or touch of a chunk (the rules timer keeps its revision's chunks warm every 30 s), ended by CRLF.
 */
const GET_LINE = /^get((?: [^\s]+)+)\r\n$/;
const TOUCH_LINE = /^touch ([^\s]+) 0\r\n$/;

function summary(req: FuzzRequest): string {
  const cut = (s: string | undefined) =>
    s === undefined ? undefined : s.length > 80 ? `${s.slice(0, 80)}…(${s.length})` : s;
  return JSON.stringify({
    from: req.from,
    realIp: cut(req.realIp),
    xff: cut(req.forwardedFor),
    override: cut(req.override),
    user: cut(req.user),
    cookie: cut(req.cookie),
    headers: req.headers.length / 2,
  });
}

async function inPool<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

describe(`fuzzing headers and cookies (GRAY_FUZZ_SEED=${SEED})`, () => {
  let memcached: MemcachedServer;
  let proxy: TcpProxy;
  let router: RouterStack;
  let store: AdminStore;

  beforeAll(async () => {
    const runtime = await testRuntime();
    memcached = await MemcachedServer.start(runtime);
    proxy = await TcpProxy.start(memcached, { record: true });
    router = await RouterStack.start({
      runtime,
      memcached: proxy,
      // One worker: once /gray/status shows a revision loaded, every request routes by it.
      workers: 1,
      canaries: FUZZ_CANARIES.filter((c) => c !== "canary"),
      ipv6: true,
      httpExtra: realipOracle(TRUSTED),
      // The proxy shares this busy event loop: a generous timeout keeps store failures (and their stable fallback) out of a run about headers.
      options: {
        ...NAMES,
        memcached: { timeout_ms: 2000 },
        trusted_proxies: TRUSTED,
        ranges: ["203.0.113.0/26", "2001:db8:2::/48"],
        weight: 5,
        debug_header: "X-Gray-Route",
        cache_ttl_ms: TTL_MS,
      },
    });
    store = new AdminStore(memcached.address);
  });
  afterAll(async () => {
    store?.close();
    await closeAgents();
    await router?.stop();
    await proxy?.stop();
    await memcached?.stop();
  });

  it(
    `${REQUESTS} requests: 200 from the rules' route, realip's address from trusted peers, the peer's own from others, valid keys only`,
    { timeout: 600_000 },
    async () => {
      const started = performance.now();
      const world = fuzzWorld(SEED, NAMES);
      const requests = fuzzRequests(SEED, world, NAMES, REQUESTS);
      // What memcached holds, mirrored: explain reads it without a round trip per request.
      const mirror = new Map(world.flags);
      for (const [key, value] of mirror) await store.set(key, value);
      for (const [key, value] of mirror) expect(await store.get(key), key).toBe(value);
      const reader = { get: (key: string) => Promise.resolve(mirror.get(key)) };
      const options: RouterOptions = routerOptions((await fetchStatus(router.statusUrl)).config);
      /** Keys the router may ask memcached for: the pointer, the release state, chunks written, the addresses requests give it. */
      const askable = new Set<string>([...POINTER_KEYS, `${PREFIX}gray:release`]);
      /** The state's document written, and mirrored (pointer and chunks); returns the revision. */
      async function writeState(state: State): Promise<number> {
        const { revision } = await editDocument(memcached.address, PREFIX, `state ${JSON.stringify(state)}`, (doc) => {
          replaceRules(doc, emptyDocument());
          for (const [canary, percent] of Object.entries(state.weights)) setWeight(doc, canary, percent);
          for (const [canary, cidrs] of Object.entries(state.ranges))
            for (const cidr of cidrs) flag(doc, "range", cidr, canary, 0);
          for (const [ip, canary] of world.ipRules) flag(doc, "ip", ip, canary, 0);
          for (const [user, canary] of world.userRules) flag(doc, "user", user, canary, 0);
        });
        for (const key of POINTER_KEYS) mirror.set(key, (await store.get(key))!);
        const pointer = parsePointer(mirror.get(pointerKey(PREFIX))!)!;
        for (let i = 0; i < pointer.crcs.length; i++) {
          for (const key of copyKeys(chunkKey(PREFIX, pointer, i))) {
            mirror.set(key, (await store.get(key))!);
            askable.add(key);
          }
        }
        return revision;
      }
      const failures: string[] = [];
      const byRule = new Map<string, number>();
      const byRoute = new Map<string, number>();
      const seen = {
        trusted: 0,
        realipChecked: 0,
        realipAmbiguous: 0,
        spoofsThatWouldMove: 0,
        hops300: 0,
        over100Headers: 0,
        maxHeaderBytes: 0,
      };

      async function check(req: FuzzRequest): Promise<void> {
        const url = req.from === "::1" ? router.url6 : router.url;
        const reply = await get(url, { from: req.from, headers: req.headers, timeoutMs: 10000 });
        const peer = formatAddress(parseAddress(req.from)!);
        const trusted = world.trustedPeers.includes(req.from);
        const ip = trusted ? clientIp(peer, req.realIp, req.forwardedFor, TRUSTED_CIDRS) : peer;
        const ask = { ip, headers: [] as [string, string][], cookieHeader: req.cookie };
        if (req.override !== undefined) ask.headers.push([NAMES.override_header, req.override]);
        if (req.user !== undefined) ask.headers.push([NAMES.user_header, req.user]);
        const want = await explain(reader, options, ask);
        askable.add(PREFIX + want.ip);
        byRule.set(want.rule, (byRule.get(want.rule) ?? 0) + 1);
        byRoute.set(want.route, (byRoute.get(want.route) ?? 0) + 1);

        const got = { status: reply.status, route: reply.body.trim(), rule: reply.headers["x-gray-route-rule"] };
        if (got.status !== 200 || got.route !== want.route || got.rule !== want.rule) {
          failures.push(
            `${summary(req)}: nginx ${got.status} ${got.route.slice(0, 40)}/${String(got.rule)}, explain ${want.route}/${want.rule} (ip ${ip})`,
          );
        }
        if (trusted) {
          seen.trusted++;
          // realip cannot tell "X-Real-IP names the peer" from "X-Real-IP names nothing": skip those few.
          const viaRealIp =
            req.realIp === undefined ? undefined : forwardedAddress(parseAddress(peer)!, req.realIp, TRUSTED_CIDRS);
          if (viaRealIp !== undefined && formatAddress(viaRealIp) === peer) {
            seen.realipAmbiguous++;
          } else {
            seen.realipChecked++;
            const realip = await realipAddress(
              router.ports,
              { from: req.from, headers: req.headers },
              req.realIp !== undefined,
            );
            if (realip !== ip) failures.push(`${summary(req)}: realip finds ${realip}, the router's code ${ip}`);
          }
        } else {
          // Would believing the headers have moved this client? Then the peer-keyed route above proves the spoof failed.
          const spoofed = clientIp(peer, req.realIp, req.forwardedFor, EVERYONE);
          if (spoofed !== peer && (await explain(reader, options, { ...ask, ip: spoofed })).route !== want.route)
            seen.spoofsThatWouldMove++;
        }
        if (req.forwardedFor !== undefined && req.forwardedFor.split(",").length >= 300) seen.hops300++;
        if (req.headers.length / 2 > 100) seen.over100Headers++;
        let size = 0;
        for (const part of req.headers) size += part.length + 2;
        seen.maxHeaderBytes = Math.max(seen.maxHeaderBytes, size);
      }

      const perState = Math.ceil(requests.length / STATES.length);
      for (const [i, state] of STATES.entries()) {
        // No state without a document after one with: the router would keep (and write back) its last revision.
        if (state !== undefined) await untilLoaded(router, await writeState(state));
        await inPool(requests.slice(i * perState, (i + 1) * perState), CONCURRENCY, check);
      }
      const seconds = (performance.now() - started) / 1000;

      const { lines, dropped } = proxy.takeCommands();
      const badKeys: string[] = [];
      let keys = 0;
      const kinds = { ip4: 0, ip6: 0, pointer: 0, chunk: 0 };
      for (const line of lines) {
        const touched = TOUCH_LINE.exec(line);
        if (touched !== null) {
          const key = touched[1]!;
          if (!CHUNK_KEY.test(key.slice(PREFIX.length)) || !askable.has(key))
            badKeys.push(`touch of ${JSON.stringify(key.slice(0, 120))}: not a chunk of a revision written`);
          continue;
        }
        const m = GET_LINE.exec(line);
        if (m === null) {
          badKeys.push(`not a get or touch line: ${JSON.stringify(line.slice(0, 120))}`);
          continue;
        }
        for (const key of m[1]!.slice(1).split(" ")) {
          keys++;
          const problem = keyProblem(key) ?? (askable.has(key) ? undefined : "not one the requests could make it ask");
          if (problem !== undefined) badKeys.push(`${JSON.stringify(key.slice(0, 120))}: ${problem}`);
          else if (POINTER_KEYS.includes(key)) kinds.pointer++;
          else if (key.startsWith(pointerKey(PREFIX))) kinds.chunk++;
          else if (key.includes(":", PREFIX.length)) kinds.ip6++;
          else kinds.ip4++;
        }
      }

      const ruleCounts = Object.fromEntries([...byRule].sort());
      console.log(
        `fuzz: seed ${SEED} (GRAY_FUZZ_SEED), ${requests.length} requests in ${seconds.toFixed(1)} s (${Math.round(requests.length / seconds)}/s), ` +
          `by rule ${JSON.stringify(ruleCounts)}, by route ${JSON.stringify(Object.fromEntries(byRoute))}, ${JSON.stringify(seen)}, memcached saw ${lines.length} get lines with ${keys} keys ${JSON.stringify(kinds)}`,
      );
      expect(
        failures.length,
        `seed ${SEED}: ${failures.length} failing requests, first: ${failures.slice(0, 5).join("\n")}`,
      ).toBe(0);
      expect(badKeys.slice(0, 5), `seed ${SEED}: keys memcached should never see`).toEqual([]);
      expect(dropped).toBe(0);
      expect(logProblems(router.errorLog()), "error.log").toEqual([]);
      expect(storeWarnings(router), "store failures").toEqual([]);

      // The run exercised what it claims to: each rule, the realip oracle, spoofs that would have mattered, and every key kind.
      for (const rule of ["override", "user", "ip", "range", "weight", "none"])
        expect(byRule.get(rule) ?? 0, rule).toBeGreaterThan(REQUESTS / 200);
      expect(seen.realipChecked).toBeGreaterThan(REQUESTS / 4);
      expect(seen.spoofsThatWouldMove).toBeGreaterThan(REQUESTS / 100);
      expect(seen.hops300).toBeGreaterThan(0);
      expect(seen.over100Headers).toBeGreaterThan(0);
      for (const [kind, count] of Object.entries(kinds))
        expect(count, `${kind} keys seen by memcached`).toBeGreaterThan(kind === "chunk" ? 1 : 10);
      // Every canary the router knows was a route, by the document's rules and its weights.
      for (const route of ["stable", ...FUZZ_CANARIES])
        expect(byRoute.get(route) ?? 0, route).toBeGreaterThan(REQUESTS / 200);
    },
  );
});
