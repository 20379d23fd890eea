/**
 * The store-fault harness pieces with the router: a TCP proxy in front of memcached that records,
 * delays or black-holes, and a fake memcached that answers garbage. Whatever the store does,
 * every request is answered 200 within the timeout plus a margin.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagStore } from "../harness/flags.ts";
import { GARBAGE_KINDS, type GarbageKind, GarbageMemcached } from "../harness/fake-memcached.ts";
import { fuzzSeed } from "../harness/fuzz.ts";
import { closeAgents, get } from "../harness/http.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { logProblems } from "../harness/nginx.ts";
import { LATENCY_BOUND_MS, TIMEOUT_MS } from "../harness/chaos.ts";
import { flagIps } from "../harness/rules.ts";
import { copyKeys, pointerKey } from "../lua-src/gray/document.ts";
import { releaseKey } from "../lua-src/gray/status.ts";
import { RouterStack } from "../harness/stack.ts";
import { TcpProxy } from "../harness/tcp-proxy.ts";
import { expectRateLimitedWarnings, routeOf, testRuntime, untilRoute } from "./support.ts";

const TTL_MS = 100;
const SEED = fuzzSeed();

/** A client flagged in the rules document: routed from memory, whatever the store does. */
const IN_DOCUMENT = "127.0.3.9";

/**
 * n requests from fresh clients (so no cache answers for them), each checked for 200, route and
 * time; after each, the client flagged in the document is still canary, within the same bound.
 */
async function expectAnsweredStable(url: string, n: number, firstHost: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const from = `127.0.4.${firstHost + i}`;
    const reply = await get(url, { from });
    expect(reply.status, from).toBe(200);
    expect(reply.body.trim(), from).toBe("stable");
    expect(reply.ms, from).toBeLessThan(LATENCY_BOUND_MS);
    const flagged = await get(url, { from: IN_DOCUMENT });
    expect([flagged.status, flagged.body.trim()], IN_DOCUMENT).toEqual([200, "canary"]);
    expect(flagged.ms, IN_DOCUMENT).toBeLessThan(LATENCY_BOUND_MS);
  }
}

describe("a TCP proxy in front of memcached", () => {
  let memcached: MemcachedServer;
  let proxy: TcpProxy;
  let router: RouterStack;
  let flags: FlagStore;

  beforeAll(async () => {
    const runtime = await testRuntime();
    memcached = await MemcachedServer.start(runtime);
    proxy = await TcpProxy.start(memcached, { record: true });
    router = await RouterStack.start({
      runtime,
      memcached: proxy,
      options: { memcached: { timeout_ms: TIMEOUT_MS }, cache_ttl_ms: TTL_MS },
    });
    flags = new FlagStore(memcached.address);
    await flags.set("127.0.3.1");
    await flagIps(memcached.address, "", [IN_DOCUMENT]);
    await untilRoute(router.url, IN_DOCUMENT, "canary", 2000);
  });
  afterAll(async () => {
    flags?.close();
    await closeAgents();
    await router?.stop();
    await proxy?.stop();
    await memcached?.stop();
  });

  it("forwards, and records the command lines the router sends", async () => {
    proxy.takeCommands();
    expect(await routeOf(router.url, { from: "127.0.3.1" })).toBe("canary");
    expect(await routeOf(router.url, { from: "127.0.3.2" })).toBe("stable");
    expect(await routeOf(router.url, { from: IN_DOCUMENT })).toBe("canary");
    // The rules timer checks the pointer (and its copies) every cache_ttl_ms, with the release key in the same get.
    await new Promise((r) => setTimeout(r, 2 * TTL_MS));
    const { lines } = proxy.takeCommands();
    expect(lines).toContain("get 127.0.3.1\r\n");
    expect(lines).toContain("get 127.0.3.2\r\n");
    expect(lines).toContain(`get ${[...copyKeys(pointerKey("")), releaseKey("")].join(" ")}\r\n`);
    // A client flagged in the document asks for nothing; the 0.1 per-rule keys are never read.
    expect(lines.filter((l) => l.includes(IN_DOCUMENT) || /gray:(ranges|weight)|uid:/.test(l))).toEqual([]);
    expect(proxy.connections).toBeGreaterThan(0);
  });

  it("with replies delayed below the timeout, routes are kept", async () => {
    proxy.setMode({ kind: "delay", ms: 15 });
    try {
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, TTL_MS)); // the cached lookup expires: each round asks the store
        const reply = await get(router.url, { from: "127.0.3.1" });
        expect([reply.status, reply.body.trim()]).toEqual([200, "canary"]);
        expect(reply.ms).toBeLessThan(LATENCY_BOUND_MS);
      }
    } finally {
      proxy.setMode({ kind: "forward" });
    }
  });

  it("with replies delayed past the timeout, answers 200 stable within timeout + margin, and recovers within 1 s", async () => {
    proxy.setMode({ kind: "delay", ms: 4 * TIMEOUT_MS });
    try {
      await expectAnsweredStable(router.url, 20, 1);
    } finally {
      proxy.setMode({ kind: "forward" });
    }
    expect(await untilRoute(router.url, "127.0.3.1", "canary", 1000)).toBeLessThan(1000);
  });

  it("black-holed, answers 200 stable within timeout + margin, and recovers within 1 s", async () => {
    proxy.setMode({ kind: "blackhole" });
    try {
      await expectAnsweredStable(router.url, 20, 31);
    } finally {
      proxy.setMode({ kind: "forward" });
    }
    expect(await untilRoute(router.url, "127.0.3.1", "canary", 1000)).toBeLessThan(1000);
  });

  it("logs no error, and the failures as rate-limited warnings", () => expectRateLimitedWarnings(router, 3));
});

/** A router in front of a fake memcached answering kinds of garbage: n rounds of 20 new clients, all 200 stable, within the bound, log bounded. */
async function survivesGarbage(kinds: GarbageKind[], rounds: number): Promise<void> {
  const WORKERS = 2;
  const fake = await GarbageMemcached.start(SEED, kinds);
  const router = await RouterStack.start({
    runtime: await testRuntime(),
    memcached: fake,
    workers: WORKERS,
    options: { memcached: { timeout_ms: TIMEOUT_MS }, cache_ttl_ms: TTL_MS, user_header: "X-User-Id" },
  });
  try {
    const started = Date.now();
    for (let round = 0; round < rounds; round++) {
      const replies = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          get(router.url, { from: `127.0.5.${1 + i}`, headers: { "x-user-id": `u${round}-${i}` } }),
        ),
      );
      for (const reply of replies) {
        expect([reply.status, reply.body.trim()]).toEqual([200, "stable"]);
        expect(reply.ms).toBeLessThan(LATENCY_BOUND_MS);
      }
      // Past the worker's 0.2 s rest after a failure, so the store is asked again.
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(fake.commandsAnswered, "the router did ask the fake store").toBeGreaterThanOrEqual(rounds);
    const elapsedS = (Date.now() - started) / 1000;
    const log = router.errorLog();
    expect(logProblems(log)).toEqual([]);
    // One warning per worker per 5 s, plus one for each worker's first failure.
    const warnings = log.split("\n").filter((l) => l.includes("[warn]"));
    expect(
      warnings.length,
      warnings
        .slice(0, 10)
        .map((l) => l.slice(0, 300))
        .join("\n"),
    ).toBeLessThanOrEqual(WORKERS * (Math.ceil(elapsedS / 5) + 1));
  } finally {
    await closeAgents();
    await router.stop();
    await fake.stop();
  }
}

describe(`a fake memcached answering garbage (GRAY_FUZZ_SEED=${SEED})`, () => {
  // Regression: this reply made lua-resty-memcached's receive() raise, and the router answer 500.
  it("a VALUE line with an absurd length: 200 stable, no Lua error", () => survivesGarbage(["absurd length"], 3));

  it(`every kind of garbage at random (${GARBAGE_KINDS.length} kinds): 200 stable within timeout + margin, log bounded`, () =>
    survivesGarbage(GARBAGE_KINDS, 16));
});
