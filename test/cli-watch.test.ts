/**
 * `gray status --watch` as a process: against a real router (two workers) under load from two
 * groups of clients, one flagged canary, with a release in memcached, piped (frame after frame, no
 * escape code): each route's requests/s near the load's real rate, the document's weight, the
 * release's step and verdicts, SIGINT ending it with exit 0. Against fake routers whose counters go
 * back (a restart) and one that fails a reading: no negative figure, the reset and the missing
 * router said, SIGTERM exit 0. On a terminal (through script(1)): redrawn in place, Ctrl-C leaves
 * the cursor shown.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeStatusServer } from "../harness/fake-status.ts";
import { type RunningGray, spawnGray } from "../harness/gray-cli.ts";
import { Load, loopbackClients } from "../harness/load.ts";
import { flagIps, readRules, setWeight } from "../harness/rules.ts";
import { newReleaseId, takeRelease } from "../node-src/cli/release-state.ts";
import { AdminStore } from "../node-src/cli/store.ts";
import { HIDE_CURSOR, SHOW_CURSOR } from "../node-src/cli/watch.ts";
import { fakeStatus, releaseAtStep2 } from "./status-fixtures.ts";
import { cliEnv, sharedMemcached, untilLoaded, useRouter } from "./support.ts";

/** The frames of a piped run: each starts with its "--- <time> ..." line. */
function blocks(out: string): string[] {
  return out.split(/^(?=--- \d{4}-\d\d-\d\dT)/m).filter((b) => b.startsWith("--- "));
}

/** A frame's route table: route → its cells (weight, req/s, requests, 5xx, 5xx rate, p50, p99). */
function routeRows(block: string): Record<string, string[]> {
  const lines = block.split("\n");
  const head = lines.findIndex((l) => l.startsWith("route "));
  const rows: Record<string, string[]> = {};
  if (head < 0) return rows;
  for (const line of lines.slice(head + 1)) {
    if (line.trim() === "" || !/^\S+ {2,}/.test(line)) break;
    const [route, ...cells] = line.split(/\s{2,}/);
    rows[route!] = cells;
  }
  return rows;
}

/** Seconds the frame's figures are over ("over the last 0.51 s"); undefined on the first frame. */
function overSeconds(block: string): number | undefined {
  const m = /over the last ([\d.]+) s ---/.exec(block);
  return m ? Number(m[1]) : undefined;
}

async function until(what: string, test: () => boolean, withinMs = 20_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(50);
  }
}

/** No figure in the route tables is negative. */
function expectNoNegative(out: string): void {
  for (const b of blocks(out))
    for (const [route, cells] of Object.entries(routeRows(b)))
      for (const cell of cells) expect(cell, `${route} in\n${b}`).not.toMatch(/^-\d|^-?\d.*-/);
  expect(out).not.toMatch(/ -\d/);
}

function stopped(run: RunningGray, signal: NodeJS.Signals) {
  run.child.kill(signal);
  return run.done;
}

const RELEASE = {
  owner: "ops@watch-test",
  host: "watch-test",
  samples: {
    canary: { requests: 31, errors: 0, error_rate: 0, p99_ms: 9.5 },
    stable: { requests: 220, errors: 0, error_rate: 0, p99_ms: 8.7 },
  },
  verdicts: [
    { step: 1, weight: 10, verdict: "pass" as const, reasons: [], at: Date.now() - 5000 },
    {
      step: 2,
      weight: 50,
      verdict: "inconclusive" as const,
      reasons: ["12 of 20 canary requests"],
      at: Date.now() - 1000,
    },
  ],
};

describe("gray status --watch, a router under load", () => {
  const ctx = useRouter({ workers: 2 });

  it(
    "piped: a frame every 500 ms with each route's requests/s, the weight, the release; SIGINT: exit 0",
    { timeout: 60_000 },
    async () => {
      const address = sharedMemcached().address;
      const canaryClients = loopbackClients(2, 101);
      await flagIps(address, "", canaryClients);
      await setWeight(address, "", 12.5);
      await untilLoaded(ctx.router, (await readRules(address))!.revision);
      const store = new AdminStore(address);
      try {
        const now = Date.now();
        const state = releaseAtStep2({
          ...RELEASE,
          id: newReleaseId(),
          started_at: now - 8000,
          lease_until: now + 120_000,
          routers: [ctx.router.statusUrl],
        });
        expect(await takeRelease(store, "", state)).toBe(true);
      } finally {
        store.close();
      }
      // Two groups, each client pausing 20 ms between requests: some tens of requests a second each.
      const common = { url: ctx.router.url, durationMs: 40_000, thinkMs: 20 };
      const stableGroup = Load.start({ ...common, sources: loopbackClients(4, 100) });
      const canaryGroup = Load.start({ ...common, sources: canaryClients });
      await sleep(1000);
      const from = stableGroup.now();
      const run = spawnGray(
        ["status", "--watch", "--interval", "500ms", "--status-url", ctx.router.statusUrl],
        cliEnv(),
      );
      await until("5 frames", () => blocks(run.stdout()).length >= 5);
      const result = await stopped(run, "SIGINT");
      const to = stableGroup.now();
      await stableGroup.stop();
      await canaryGroup.stop();

      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).not.toContain("\x1b");
      const all = blocks(result.stdout);
      expect(all[0]).toContain("first reading: rates from the next one");
      const seconds = (to - from) / 1000;
      // The load's real rate per route over the watch (both groups on one clock).
      const records = [stableGroup, canaryGroup].flatMap((l) =>
        l.records.map((r) => ({ ...r, at: r.at + l.started - stableGroup.started })),
      );
      const inWatch = records.filter((r) => r.at >= from && r.at < to && r.status === 200);
      const real = {
        stable: inWatch.filter((r) => r.route === "stable").length / seconds,
        canary: inWatch.filter((r) => r.route === "canary").length / seconds,
      };
      expect(Load.combined([stableGroup, canaryGroup]).failed).toBe(0);
      expect(real.canary).toBeGreaterThan(10);
      expect(real.stable).toBeGreaterThan(10);
      const intervals = all.slice(1).filter((b) => overSeconds(b) !== undefined);
      expect(intervals.length).toBeGreaterThanOrEqual(3);
      for (const route of ["stable", "canary"] as const) {
        const shown = intervals.map((b) => Number(routeRows(b)[route]![1]));
        const counted = intervals.map((b) => Number(routeRows(b)[route]![2]));
        const over = intervals.reduce((s, b) => s + overSeconds(b)!, 0);
        const mean = counted.reduce((a, b) => a + b, 0) / over;
        const detail = `${route}: mean ${(counted.reduce((a, b) => a + b, 0) / intervals.reduce((s, b) => s + overSeconds(b)!, 0)).toFixed(1)} shown ${shown.join(", ")} req/s, load ${real[route].toFixed(1)} req/s`;
        // Two workers flush their counts once a second: a 500 ms frame may hold one's share twice or not at all.
        for (const r of shown) expect(r, detail).toBeGreaterThanOrEqual(0);
        for (const r of shown) expect(r, detail).toBeLessThan(3 * real[route]);
        expect(mean, detail).toBeGreaterThan(0.6 * real[route]);
        expect(mean, detail).toBeLessThan(1.5 * real[route]);
      }
      for (const b of all) {
        const rows = routeRows(b);
        expect(rows.canary![0]).toBe("12.5 %");
        expect(rows.stable![0]).toBe("87.5 %");
      }
      const last = all.at(-1)!;
      expect(last).toMatch(
        /^release {2}canary by ops@watch-test \(pid 4242\), step 2\/3 at weight 50 %, started \d+ s ago: running; last check inconclusive \(12 of 20 canary requests\)$/m,
      );
      expect(last).toContain("  steps 10,50,100 %, now 2/3 at weight 50 %; state running, control run");
      expect(last).toContain(
        "  samples  canary 5xx 0.00 % (0 of 31) p99 9.5 ms; stable 5xx 0.00 % (0 of 220) p99 8.7 ms",
      );
      expect(last).toMatch(/^ {2}checks {3}\d\d:\d\d:\d\d step 1 \(10 %\) pass$/m);
      expect(last).toMatch(/^ {11}\d\d:\d\d:\d\d step 2 \(50 %\) inconclusive: 12 of 20 canary requests$/m);
      expect(last).toMatch(
        /^rules {4}revision \d+ \(age \d+ s, from (memcached|shared dict)\), 2 ips, 0 ranges, 0 users: ok$/m,
      );
      expect(last).toContain(`  ${ctx.router.statusUrl}  answered: revision`);
      expectNoNegative(result.stdout);
    },
  );
});

describe("gray status --watch, fake routers: a restart and a reading missed", () => {
  const status = (stable: number, canary: number) =>
    fakeStatus({ routes: { stable: { requests: stable }, canary: { requests: canary } }, weights: { canary: 5 } });
  let a: FakeStatusServer;
  let b: FakeStatusServer;
  beforeAll(async () => {
    // One reading a frame: A restarts before its third reading, B fails its second.
    a = await FakeStatusServer.start([status(1000, 100), status(1100, 120), status(50, 5), status(150, 25)]);
    b = await FakeStatusServer.start([status(200, 20), 503, status(300, 30), status(400, 40)]);
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
  });

  it("counts from the reset, never negative; the missing router named, not fatal; SIGTERM: exit 0", async () => {
    const run = spawnGray(
      ["status", "-w", "--interval", "200ms", "--status-url", a.statusUrl, "--status-url", b.statusUrl],
      cliEnv(),
    );
    await until("5 frames", () => blocks(run.stdout()).length >= 5);
    const result = await stopped(run, "SIGTERM");
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain("\x1b");
    const [first, second, third, fourth, fifth] = blocks(result.stdout);
    // Totals, no rates: 1000 + 200 stable requests so far.
    expect(routeRows(first!).stable!.slice(1, 3)).toEqual(["-", "-"]);
    expect(first).toContain("routers  2 of 2 answered");
    // B does not answer: A alone, 100 stable and 20 canary requests.
    expect(second).toContain("routers  1 of 2 answered");
    expect(second).toMatch(new RegExp(`^  ${b.statusUrl}  NO ANSWER: .*503`, "m"));
    expect(routeRows(second!).stable![2]).toBe("100");
    expect(routeRows(second!).canary![2]).toBe("20");
    // A restarted (1100 → 50): its 50 and 5 since the reset; B is back but has no reading before.
    expect(third).toContain(`counters went down (restarted) at ${a.statusUrl}`);
    expect(third).toMatch(new RegExp(`^  ${a.statusUrl}  answered: .*counters RESET`, "m"));
    expect(third).toMatch(new RegExp(`^  ${b.statusUrl}  answered: .*no reading before`, "m"));
    expect(routeRows(third!).stable![2]).toBe("50");
    expect(routeRows(third!).canary![2]).toBe("5");
    // Both: A 100 + B 100 stable, A 20 + B 10 canary.
    expect(routeRows(fourth!).stable![2]).toBe("200");
    expect(routeRows(fourth!).canary![2]).toBe("30");
    // The scripts ran out, the last answers repeat: nothing moves.
    expect(routeRows(fifth!).stable!.slice(1, 3)).toEqual(["0.0", "0"]);
    for (const blk of [second, third, fourth]) {
      // "over the last" is rounded to 10 ms; the rate is of the exact time.
      const shown = Number(routeRows(blk!).stable![1]);
      const expected = Number(routeRows(blk!).stable![2]) / overSeconds(blk!)!;
      expect(Math.abs(shown - expected) / expected).toBeLessThan(0.06);
    }
    expect(routeRows(fourth!).canary![0]).toBe("5 %");
    expectNoNegative(result.stdout);
  });
});

describe("gray status --watch on a terminal", () => {
  let fake: FakeStatusServer;
  beforeAll(async () => {
    fake = await FakeStatusServer.start([
      fakeStatus({ routes: { stable: { requests: 10 } } }),
      fakeStatus({ routes: { stable: { requests: 30 } } }),
    ]);
  });
  afterAll(() => fake?.stop());

  // script(1) is util-linux's (Debian's bsdutils, essential; harness/setup.sh installs it where missing).
  it("redrawn in place through a pseudo-terminal; Ctrl-C shows the cursor again, exit 0", async () => {
    const run = spawnGray(["status", "--watch", "--interval", "200ms", "--status-url", fake.statusUrl], cliEnv(), {
      terminal: true,
    });
    await until("3 redraws", () => run.stdout().split("\x1b[H").length > 3);
    run.child.stdin!.write("\x03");
    const { code, stdout: out } = await run.done;
    expect(code).toBe(0);
    expect(out.startsWith(HIDE_CURSOR)).toBe(true);
    expect(out).toContain("\x1b[2J");
    expect(out).toMatch(/stable +100 % +[\d.]+ +20 /);
    expect(out.trimEnd().endsWith(SHOW_CURSOR)).toBe(true);
    expect(out.lastIndexOf(SHOW_CURSOR)).toBeGreaterThan(out.lastIndexOf(HIDE_CURSOR));
  });
});
