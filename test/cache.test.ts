/**
 * The shared-dict cache: a steady client costs no memcached round trip, and a change made in
 * memcached reaches routing within 1 s on every worker.
 */
import { describe, expect, it } from "vitest";
import { get } from "../harness/http.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { expectCleanLog, routeOf, useRouter } from "./support.ts";

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

  const cases: { name: string; from: string; before: string; after: string; change: () => Promise<void> }[] = [
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
      change: () => ctx.flags.set("gray:weight", "100"),
    },
    {
      name: "a range",
      from: "127.0.4.4",
      before: "stable",
      after: "canary",
      change: () => ctx.flags.set("gray:ranges", "127.0.4.0/29"),
    },
  ];
  for (const c of cases) {
    it(`${c.name} reaches every worker within 1 s`, async () => {
      if (c.before === "canary") await ctx.flags.set(c.from);
      await warm(c.from, c.before);
      const lastOld = await propagation(c.from, c.after, c.change);
      const worst = Math.max(0, ...lastOld.values());
      console.log(`${c.name}: last old answer ${worst} ms after the change`);
      expect(worst).toBeLessThan(WITHIN_MS);
    });
  }

  it("a steady client is answered from the cache, not memcached", async () => {
    await routeOf(ctx.router.url, { from: "127.0.4.9" });
    // Both workers flush their counters each second: let earlier requests reach the dict first.
    await new Promise((r) => setTimeout(r, 1100));
    const before = (await fetchStatus(ctx.router.statusUrl)).store;
    const started = Date.now();
    for (let i = 0; i < 200; i++) await routeOf(ctx.router.url, { from: "127.0.4.9" });
    const elapsed = Date.now() - started;
    await new Promise((r) => setTimeout(r, 1100));
    const after = (await fetchStatus(ctx.router.statusUrl)).store;
    const misses = after.misses - before.misses;
    // One memcached get per cache period at most, per worker (the dict is shared, so usually fewer).
    expect(misses).toBeLessThanOrEqual(2 * Math.ceil(elapsed / 500) + 2);
    // Every one of the 200 lookups is counted once: from the dict or from memcached.
    expect(after.hits - before.hits + misses).toBe(200);
    expect(after.fallbacks - before.fallbacks).toBe(0);
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
