/**
 * The README's worked gray release, driven by the `gray` CLI against a real router: testers
 * first, then 1 % → 10 % → 50 % → 100 %, watching `gray status`; at each step exactly the
 * clients the rules (as JavaScript) put under the weight are on canary. And the weight's
 * promise: at 50 % about half of 200 distinct clients go to canary, and each one stays there.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { gray } from "../harness/gray-cli.ts";
import { canaryByWeight } from "../harness/weight-split.ts";
import type { Status } from "../lua-src/gray/status.ts";
import { explain, routerOptions } from "../node-src/cli/explain.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { AdminStore } from "../node-src/cli/store.ts";
import { expectCleanLog, routeOf, sharedMemcached, useRouter } from "./support.ts";
import type { Listing } from "../node-src/cli/commands/list.ts";

/** A new rules revision routes within 1 s (each worker checks for one every cache_ttl_ms, 500 ms by default). */
const PROPAGATION_MS = 1000;
/** Every worker has flushed its route counters to the dict (once a second). */
const COUNTER_FLUSH_MS = 1100;

async function cli(args: string[]): Promise<string> {
  const r = await gray(args, { GRAY_MEMCACHED: sharedMemcached().address });
  expect(r.stderr, args.join(" ")).toBe("");
  expect(r.code, args.join(" ")).toBe(0);
  return r.stdout;
}

const clients = (third: number, count: number) => Array.from({ length: count }, (_, i) => `127.0.${third}.${i + 1}`);

describe("worked release", () => {
  const ctx = useRouter({ options: { user_header: "X-User" } });

  it("testers, then 1 % → 10 % → 50 % → 100 %, each step only adding canary users", { timeout: 60_000 }, async () => {
    const users = clients(7, 100);
    const testers = ["127.0.7.201", "127.0.7.202"];
    // As the README has it: the first edit on a new store starts the document (--init).
    await cli(["add", "--init", ...testers]);
    await cli(["add-user", "tester-1"]);
    await sleep(PROPAGATION_MS);
    for (const t of testers) expect(await routeOf(ctx.router.url, { from: t })).toBe("canary");
    expect(await routeOf(ctx.router.url, { from: "127.0.7.150", headers: { "X-User": "tester-1" } })).toBe("canary");
    for (const u of users) expect(await routeOf(ctx.router.url, { from: u })).toBe("stable");

    const options = routerOptions((await fetchStatus(ctx.router.statusUrl)).config);
    let canary = new Set<string>();
    await sleep(COUNTER_FLUSH_MS);
    let lastStatus = JSON.parse(await cli(["status", "--url", ctx.router.statusUrl, "--json"])) as Status;
    for (const weight of [1, 10, 50, 100]) {
      expect(await cli(["weight", `${weight}`])).toContain(`weight ${weight} %`);
      await sleep(PROPAGATION_MS);
      const now = new Set<string>();
      for (const u of users) {
        const first = await routeOf(ctx.router.url, { from: u });
        expect(await routeOf(ctx.router.url, { from: u }), `${u} stays put`).toBe(first);
        if (first === "canary") now.add(u);
      }
      for (const u of canary) expect(now.has(u), `${u} went back to stable at ${weight} %`).toBe(true);
      expect([...now].sort(), `canary clients at ${weight} %`).toEqual(
        [...canaryByWeight(options, users, weight)].sort(),
      );
      canary = now;

      const table = await cli(["status", "--url", ctx.router.statusUrl]);
      expect(table).toContain(`weight ${weight} %`);
      await sleep(COUNTER_FLUSH_MS);
      const status = JSON.parse(await cli(["status", "--url", ctx.router.statusUrl, "--json"])) as Status;
      // Two requests per user since the last reading, and nothing else routed.
      expect(status.routes.canary!.requests - lastStatus.routes.canary!.requests).toBe(2 * now.size);
      expect(status.routes.stable!.requests - lastStatus.routes.stable!.requests).toBe(2 * (users.length - now.size));
      expect(status.routes.canary!.responses_5xx).toBe(0);
      lastStatus = status;
    }
    const listed = JSON.parse(await cli(["list", "--json"])) as Listing;
    expect(listed.canaries.canary!.ips.map((i) => i.subject).sort()).toEqual(testers);
    expect(listed.canaries.canary!.users.map((u) => u.subject)).toEqual(["tester-1"]);
    expect(listed.canaries.canary!.weight).toBe(100);
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});

describe("weight 50 over 200 distinct clients", () => {
  const ctx = useRouter();

  it("sends about half to canary, each client always to the same version, as explain says", async () => {
    await cli(["weight", "50"]);
    await sleep(PROPAGATION_MS);
    const store = new AdminStore(sharedMemcached().address);
    const options = routerOptions((await fetchStatus(ctx.router.statusUrl)).config);
    let canary = 0;
    try {
      for (const from of [...clients(8, 100), ...clients(9, 100)]) {
        const routes = new Set<string>();
        for (let i = 0; i < 3; i++) routes.add(await routeOf(ctx.router.url, { from }));
        expect([...routes], from).toHaveLength(1);
        const [route] = routes;
        expect((await explain(store, options, { ip: from })).route, from).toBe(route);
        if (route === "canary") canary++;
      }
    } finally {
      store.close();
    }
    console.log(`weight 50: ${canary} of 200 clients on canary`);
    // Binomial(200, 0.5): 100 ± 3 standard deviations (7.1 each).
    expect(canary).toBeGreaterThanOrEqual(79);
    expect(canary).toBeLessThanOrEqual(121);
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
