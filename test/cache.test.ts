/**
 * The shared-dict cache and the rules document: a steady client costs no memcached round trip, and
 * a change made in memcached (a per-IP seed key, or a revision of the rules document) reaches
 * routing within 1 s on every worker.
 */
import { describe, expect, it } from "vitest";
import { CHECK_KEYS } from "../lua-src/gray/status.ts";
import { get } from "../harness/http.ts";
import { editDocument, flagIps, setRanges, setWeight } from "../harness/rules.ts";
import { unflag } from "../node-src/rules/edit.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { expectCleanLog, routeOf, sharedMemcached, useRouter } from "./support.ts";

const WITHIN_MS = 1000;

describe("cache, 2 workers", () => {
  const ctx = useRouter({ workers: 2, reuseport: true, serverExtra: ["add_header X-Worker $pid always;"] });

  /**
   * Makes the change, then asks over new connections (spread over the workers by reuseport)
   * until every worker has answered `want` and none has answered otherwise for 300 ms.
   * Returns, per worker, how long after the change its last old answer came.
   */
  async function propagation(from: string, want: string, change: () => Promise<void>): Promise<Map<string, number>> {
    const lastOld = new Map<string, number>();
    const seenNew = new Set<string>();
    await change();
    const started = Date.now();
    let stableSince = Infinity;
    while (Date.now() - started < WITHIN_MS + 1000) {
      const reply = await get(ctx.router.url, { from, fresh: true });
      expect(reply.status).toBe(200);
      const worker = String(reply.headers["x-worker"]);
      if (reply.body.trim() === want) {
        seenNew.add(worker);
        if (seenNew.size === 2 && stableSince === Infinity) stableSince = Date.now();
      } else {
        lastOld.set(worker, Date.now() - started);
        stableSince = Infinity;
      }
      if (Date.now() - stableSince > 300) return lastOld;
    }
    throw new Error(`workers never settled on ${want}: saw ${[...seenNew].join(", ")}`);
  }

  /** Until both workers answer `want` (an earlier test's weight or ranges may still be cached for a moment). */
  async function warm(from: string, want: string): Promise<void> {
    const workers = new Set<string>();
    for (let i = 0; i < 200 && workers.size < 2; i++) {
      const reply = await get(ctx.router.url, { from, fresh: true });
      if (reply.body.trim() === want) workers.add(String(reply.headers["x-worker"]));
      else await new Promise((r) => setTimeout(r, 20));
    }
    expect(workers.size, "reuseport spread connections over both workers").toBe(2);
  }

  const memcached = sharedMemcached().address;
  /** Asks until `ask` answers `want` 10 times in a row (over new connections: both workers), for at most 2 s. */
  async function until(ask: () => Promise<string>, want: string): Promise<void> {
    const started = Date.now();
    for (let inARow = 0; inARow < 10;) {
      if (Date.now() - started > 2000) throw new Error(`not ${want} within 2 s`);
      inARow = (await ask()) === want ? inARow + 1 : 0;
    }
  }

  const cases: {
    name: string;
    from: string;
    before: string;
    after: string;
    /** The "before" flag is set in the document, not as a seed key. */
    document?: boolean;
    change: () => Promise<void>;
  }[] = [
    { name: "a flag", from: "127.0.4.1", before: "stable", after: "canary", change: () => ctx.flags.set("127.0.4.1") },
    {
      name: "an unflag",
      from: "127.0.4.2",
      before: "canary",
      after: "stable",
      change: () => ctx.flags.delete("127.0.4.2"),
    },
    {
      name: "a weight",
      from: "127.0.4.3",
      before: "stable",
      after: "canary",
      change: () => setWeight(memcached, "", 100),
    },
    {
      name: "a range",
      from: "127.0.4.4",
      before: "stable",
      after: "canary",
      change: () => setRanges(memcached, "", ["127.0.4.0/29"]),
    },
    {
      name: "an IP in the document",
      from: "127.0.4.5",
      before: "stable",
      after: "canary",
      change: () => flagIps(memcached, "", ["127.0.4.5"]),
    },
    {
      name: "an IP's removal from the document",
      from: "127.0.4.6",
      before: "canary",
      after: "stable",
      document: true,
      change: () => editDocument(memcached, "", "remove 127.0.4.6", (doc) => unflag(doc, "ip", "127.0.4.6")).then(),
    },
  ];
  for (const c of cases) {
    it(`${c.name} reaches every worker within 1 s`, async () => {
      if (c.before === "canary") await (c.document ? flagIps(memcached, "", [c.from]) : ctx.flags.set(c.from));
      await warm(c.from, c.before);
      const lastOld = await propagation(c.from, c.after, c.change);
      const worst = Math.max(0, ...lastOld.values());
      console.log(`${c.name}: last old answer ${worst} ms after the change`);
      expect(worst).toBeLessThan(WITHIN_MS);
    });
  }

  /** 200 requests from `from`: the store counters' and memcached's cmd_get deltas, and how long they took. */
  async function steady(from: string, want?: string) {
    await routeOf(ctx.router.url, { from });
    // Both workers flush their counters each second: let earlier requests reach the dict first.
    await new Promise((r) => setTimeout(r, 1100));
    const before = (await fetchStatus(ctx.router.statusUrl)).store;
    const getsBefore = Number((await ctx.flags.stats()).cmd_get);
    const started = Date.now();
    for (let i = 0; i < 200; i++) {
      const route = await routeOf(ctx.router.url, { from });
      if (want !== undefined) expect(route).toBe(want);
    }
    const elapsed = Date.now() - started;
    const gets = Number((await ctx.flags.stats()).cmd_get) - getsBefore;
    await new Promise((r) => setTimeout(r, 1100));
    const after = (await fetchStatus(ctx.router.statusUrl)).store;
    const store = {
      hits: after.hits - before.hits,
      misses: after.misses - before.misses,
      fallbacks: after.fallbacks - before.fallbacks,
    };
    // The rules timers' pointer checks: one per worker per cache_ttl_ms (500 ms), whatever the traffic,
    // each a get of the pointer's copies and the release key (memcached counts every key).
    const timerGets = CHECK_KEYS * (2 * Math.ceil(elapsed / 500) + 2);
    return { store, gets, elapsed, timerGets };
  }

  it("a steady client is answered from the cache, not memcached; the document's weight and ranges never ask it", async () => {
    // Rules in the document that the client does not match by IP: it falls through to ranges and weight.
    await setRanges(memcached, "", ["10.0.0.0/8"]);
    await setWeight(memcached, "", 50);
    const { store, gets, elapsed, timerGets } = await steady("127.0.4.9");
    // One memcached get per cache period at most, per worker (the dict is shared, so usually fewer).
    expect(store.misses).toBeLessThanOrEqual(2 * Math.ceil(elapsed / 500) + 2);
    // Every one of the 200 requests looks up its seed key once, from the dict or from memcached, and nothing else:
    // the weight and the ranges are answered from memory.
    expect(store.hits + store.misses).toBe(200);
    expect(store.fallbacks).toBe(0);
    expect(gets).toBeLessThanOrEqual(store.misses + timerGets);
  });

  it("a client flagged in the document asks neither the cache nor memcached", async () => {
    await flagIps(memcached, "", ["127.0.4.10"]);
    await until(() => routeOf(ctx.router.url, { from: "127.0.4.10", fresh: true }), "canary");
    const { store, gets, timerGets } = await steady("127.0.4.10", "canary");
    expect(store).toEqual({ hits: 0, misses: 0, fallbacks: 0 });
    expect(gets).toBeLessThanOrEqual(timerGets);
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
