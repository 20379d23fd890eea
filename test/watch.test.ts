/**
 * `gray status --watch` without servers: the interval's figures from two readings (differences,
 * counters that went down, a route that appears, a router missing from one reading, histogram
 * differences to p50/p99), the frame rendered from them, and the loop on a fake terminal and pipe.
 */
import { describe, expect, it } from "vitest";
import { LATENCY_LE } from "../lua-src/gray/status.ts";
import type { FleetReading } from "../node-src/cli/fleet.ts";
import type { ReleaseState } from "../node-src/cli/release-state.ts";
import { HIDE_CURSOR, SHOW_CURSOR, type WatchIO, placeFrame, watch } from "../node-src/cli/watch.ts";
import { type ReleaseView, releaseLines, renderFrame } from "../node-src/cli/watch-frame.ts";
import { intervalOf, statusDelta } from "../node-src/cli/watch-rates.ts";
import { fakeStatus, reading } from "./status-fixtures.ts";

const A = "http://127.0.0.1:1001/gray/status";
const B = "http://127.0.0.1:1002/gray/status";

/** Every number the interval reports, to check none is negative. */
function allNumbers(x: unknown): number[] {
  if (typeof x === "number") return [x];
  if (x === null || typeof x !== "object") return [];
  return Object.values(x).flatMap(allNumbers);
}

describe("the interval's figures (watch-rates)", () => {
  it("differences of the counters over the time between the readings", () => {
    const before = reading(10_000, {
      [A]: fakeStatus({ routes: { stable: { requests: 100, errors: 5 }, canary: { requests: 10 } }, lookups: 7 }),
    });
    const now = reading(12_000, {
      [A]: fakeStatus({
        routes: { stable: { requests: 300, errors: 15 }, canary: { requests: 60, errors: 1 } },
        lookups: 17,
        lookupErrors: 2,
      }),
    });
    const i = intervalOf(before, now, [A]);
    expect(i.elapsedMs).toBe(2000);
    expect(i.routers.map((r) => r.state)).toEqual(["ok"]);
    expect(i.rates.stable).toMatchObject({ requests: 200, errors: 10, perSecond: 100, errorRate: 0.05 });
    expect(i.rates.canary).toMatchObject({ requests: 50, errors: 1, perSecond: 25, errorRate: 0.02 });
    expect(i.counts!.store.hits).toBe(10);
    expect(i.counts!.store_errors.lookup).toBe(2);
    // The totals now, as gray status shows them.
    expect(i.now!.routes.stable!.requests).toBe(300);
  });

  it("the first reading has totals and no rates", () => {
    const i = intervalOf(undefined, reading(0, { [A]: fakeStatus({ routes: { stable: { requests: 5 } } }) }), [A]);
    expect(i.elapsedMs).toBeUndefined();
    expect(i.counts).toBeUndefined();
    expect(i.rates).toEqual({});
    expect(i.routers[0]!.state).toBe("first");
  });

  it("counters that went down are a reset: the interval counts from it, never a negative rate", () => {
    const before = reading(0, { [A]: fakeStatus({ routes: { stable: { requests: 1000, errors: 50 } } }) });
    const now = reading(1000, { [A]: fakeStatus({ routes: { stable: { requests: 40, errors: 2 } } }) });
    const i = intervalOf(before, now, [A]);
    expect(i.routers[0]!.state).toBe("reset");
    expect(i.rates.stable).toMatchObject({ requests: 40, errors: 2, perSecond: 40, errorRate: 0.05 });
    expect(allNumbers(i.counts).every((n) => n >= 0)).toBe(true);
    expect(allNumbers(i.rates).every((n) => n >= 0)).toBe(true);
  });

  it("one counter down means the router restarted: all its counters count from the reset", () => {
    // stable went up (30 > 10), canary down: after a restart stable's 30 are all since the reset.
    const before = fakeStatus({ routes: { stable: { requests: 10 }, canary: { requests: 500 } } });
    const now = fakeStatus({ routes: { stable: { requests: 30 }, canary: { requests: 20 } } });
    const { delta, reset } = statusDelta(before, now);
    expect(reset).toBe(true);
    expect(delta.routes.stable!.requests).toBe(30);
    expect(delta.routes.canary!.requests).toBe(20);
    // So do the other counters (a decision counter alone going down is a reset too).
    const rulesDown = structuredClone(before);
    rulesDown.rules.weight = 0;
    expect(statusDelta(before, rulesDown).reset).toBe(true);
    expect(statusDelta(before, before).reset).toBe(false);
  });

  it("a route that appears between two readings counts from 0", () => {
    const before = reading(0, { [A]: fakeStatus({ routes: { stable: { requests: 100 } } }) });
    const now = reading(1000, { [A]: fakeStatus({ routes: { stable: { requests: 150 }, beta: { requests: 7 } } }) });
    const i = intervalOf(before, now, [A]);
    expect(i.routers[0]!.state).toBe("ok");
    expect(i.rates.stable!.requests).toBe(50);
    expect(i.rates.beta).toMatchObject({ requests: 7, perSecond: 7 });
  });

  it("a router missing from either reading is left out of that interval, not a drop or a burst", () => {
    const a = (n: number) => fakeStatus({ routes: { stable: { requests: n } } });
    const r1 = reading(0, { [A]: a(100), [B]: a(5000) });
    const r2 = reading(1000, { [A]: a(110), [B]: "connect ECONNREFUSED" });
    const r3 = reading(2000, { [A]: a(130), [B]: a(5100) });
    const r4 = reading(3000, { [A]: a(160), [B]: a(5140) });
    const i2 = intervalOf(r1, r2, [A, B]);
    expect(i2.routers.map((r) => r.state)).toEqual(["ok", "missing"]);
    expect(i2.routers[1]!.error).toBe("connect ECONNREFUSED");
    expect(i2.rates.stable!.requests).toBe(10);
    const i3 = intervalOf(r2, r3, [A, B]);
    expect(i3.routers.map((r) => r.state)).toEqual(["ok", "first"]);
    expect(i3.rates.stable!.requests).toBe(20);
    // Its totals are in what the routers hold now, though.
    expect(i3.now!.routes.stable!.requests).toBe(5230);
    const i4 = intervalOf(r3, r4, [A, B]);
    expect(i4.rates.stable).toMatchObject({ requests: 70, perSecond: 70 });
    // Nobody answered: nothing to show, nothing negative.
    const none = intervalOf(r4, reading(4000, { [A]: "timeout", [B]: "timeout" }), [A, B]);
    expect(none.now).toBeUndefined();
    expect(none.counts).toBeUndefined();
    expect(none.rates).toEqual({});
  });

  it("p50 and p99 of the interval come from the histograms' difference, not the totals", () => {
    // 1000 slow requests (0.5–1 s) before; then 100 fast ones (≤ 5 ms) in the interval.
    const slow = [0, 0, 0, 0, 0, 0, 0, 1000];
    const before = reading(0, { [A]: fakeStatus({ routes: { stable: { requests: 1000, buckets: slow } } }) });
    const mixed = [100, 0, 0, 0, 0, 0, 0, 1000];
    const now = reading(1000, { [A]: fakeStatus({ routes: { stable: { requests: 1100, buckets: mixed } } }) });
    const r = intervalOf(before, now, [A]).rates.stable!;
    expect(r.p50).toBeCloseTo(0.0025, 6);
    expect(r.p99).toBeCloseTo(0.00495, 6);
    // Some slow ones in the interval too: 90 fast, 10 in (0.25, 0.5].
    const later = reading(2000, {
      [A]: fakeStatus({ routes: { stable: { requests: 1200, buckets: [190, 0, 0, 0, 0, 0, 10, 1000] } } }),
    });
    const r2 = intervalOf(now, later, [A]).rates.stable!;
    expect(r2.p50).toBeCloseTo(0.005 * (50 / 90), 6);
    expect(r2.p99).toBeCloseTo(0.25 + 0.25 * (9 / 10), 6);
    expect(LATENCY_LE[5]).toBe(0.25);
  });

  it("without histograms (routers before 0.3) there is no p50 or p99, and rates all the same", () => {
    const spec = (n: number) => fakeStatus({ routes: { stable: { requests: n, noLatency: true } } });
    const r = intervalOf(reading(0, { [A]: spec(10) }), reading(500, { [A]: spec(20) }), [A]).rates.stable!;
    expect(r).toMatchObject({ requests: 10, perSecond: 20, p50: undefined, p99: undefined });
  });
});

const RELEASE: ReleaseState = {
  format: 1,
  id: "abc",
  owner: "ops@host",
  pid: 4242,
  host: "host",
  canary: "canary",
  steps: [10, 50, 100],
  from_weight: 0,
  step: 2,
  weight: 50,
  state: "waiting",
  control: "pause",
  control_by: "lead@desk",
  started_at: 1_000_000,
  lease_until: 1_000_000 + 60_000,
  routers: [A],
  samples: {
    canary: { requests: 12, errors: 0, error_rate: 0, p99_ms: 8.5 },
    stable: { requests: 40, errors: 1, error_rate: 0.025, p99_ms: null },
  },
  verdicts: [
    { step: 1, weight: 10, verdict: "pass", reasons: [], at: 1_005_000 },
    { step: 2, weight: 50, verdict: "inconclusive", reasons: ["12 of 20 canary requests"], at: 1_010_000 },
  ],
};

describe("the frame (watch-frame)", () => {
  const two = (at: number, s: number, c: number) =>
    reading(at, {
      [A]: fakeStatus({
        routes: { stable: { requests: s, errors: s / 100 }, canary: { requests: c } },
        weights: { canary: 12.5 },
      }),
    });
  const none: ReleaseView = { none: true };

  it("a row per route: weight, req/s, requests, 5xx, 5xx rate, p50, p99 of the interval; no escape code", () => {
    const frame = renderFrame({
      urls: [A],
      intervalMs: 1000,
      before: two(0, 100, 10),
      now: two(1000, 300, 60),
      release: none,
    });
    const lines = frame.split("\n");
    expect(lines[0]).toBe("--- 1970-01-01T00:00:01.000Z  every 1.00 s, over the last 1.00 s ---");
    const header = lines.findIndex((l) => l.startsWith("route"));
    expect(lines[header]!.split(/\s{2,}/)).toEqual([
      "route",
      "weight",
      "req/s",
      "requests",
      "5xx",
      "5xx rate",
      "p50",
      "p99",
    ]);
    expect(lines[header + 1]!.split(/\s{2,}/)).toEqual([
      "stable",
      "87.5 %",
      "200.0",
      "200",
      "2",
      "1.00 %",
      "2.5 ms",
      "5.0 ms",
    ]);
    expect(lines[header + 2]!.split(/\s{2,}/)).toEqual([
      "canary",
      "12.5 %",
      "50.0",
      "50",
      "0",
      "0.00 %",
      "2.5 ms",
      "5.0 ms",
    ]);
    expect(frame).toMatch(
      /^rules {4}revision 1764480000123 \(age 9 s, from memcached\), 2 ips, 1 range, 0 users: ok$/m,
    );
    expect(frame).toMatch(/^release {2}none running$/m);
    expect(frame).toContain(`${A}  answered: revision 1764480000123, canary 12.5 %, 300 + 60 requests; 250.0 req/s`);
    expect(frame).not.toContain("\x1b");
  });

  it("the first frame says rates come from the next one, and shows no rate", () => {
    const frame = renderFrame({ urls: [A], intervalMs: 500, before: undefined, now: two(0, 100, 10), release: none });
    expect(frame.split("\n")[0]).toContain("first reading: rates from the next one");
    expect(frame).toMatch(/^stable +87\.5 % +- +- +- +- +- +-$/m);
  });

  it("a reset is said, with the counts since, and no negative figure", () => {
    const frame = renderFrame({
      urls: [A],
      intervalMs: 1000,
      before: two(0, 5000, 900),
      now: two(1000, 30, 4),
      release: none,
    });
    expect(frame).toMatch(/^stable +87\.5 % +30\.0 +30 /m);
    expect(frame).toContain(`counters went down (restarted) at ${A}: this interval counts from the reset there`);
    expect(frame).toContain("(counters RESET: counted from the reset)");
    expect(frame).not.toMatch(/(^|\s)-\d/m);
  });

  it("several routers: the sums, a line per router, NO ANSWER for one that does not answer", () => {
    const s = (n: number) => fakeStatus({ routes: { stable: { requests: n } } });
    const frame = renderFrame({
      urls: [A, B],
      intervalMs: 1000,
      before: reading(0, { [A]: s(10), [B]: s(100) }),
      now: reading(1000, { [A]: s(20), [B]: "cannot read: connect ECONNREFUSED" }),
      release: none,
    });
    expect(frame).toContain("routers  1 of 2 answered; figures summed over those with two readings");
    expect(frame).toContain(`  ${B}  NO ANSWER: cannot read: connect ECONNREFUSED`);
    expect(frame).toMatch(/^stable +100 % +10\.0 +10 /m);
    const nobody = renderFrame({
      urls: [A],
      intervalMs: 1000,
      before: undefined,
      now: reading(0, { [A]: "timeout" }),
      release: { error: "127.0.0.1:1: no answer within 1 s" },
    });
    expect(nobody).toContain("no router answered");
    expect(nobody).toContain("release  unknown (127.0.0.1:1: no answer within 1 s)");
    expect(nobody).toContain(`${A}  NO ANSWER: timeout`);
  });

  it("a rules problem is shown", () => {
    const bad = reading(0, {
      [A]: fakeStatus({ routes: { stable: { requests: 1 } }, lastError: "memcached timed out" }),
    });
    expect(renderFrame({ urls: [A], intervalMs: 1000, before: undefined, now: bad, release: none })).toMatch(
      /^rules .*: PROBLEM: memcached timed out$/m,
    );
  });

  it("a release: step, weight, state and control, samples, each verdict so far", () => {
    const lines = releaseLines({ state: RELEASE }, 1_020_000);
    expect(lines[0]).toBe(
      "release  canary by ops@host (pid 4242), step 2/3 at weight 50 %, started 20 s ago: waiting; last check inconclusive (12 of 20 canary requests)",
    );
    expect(lines[1]).toBe("  steps 10,50,100 %, now 2/3 at weight 50 %; state waiting, control pause (by lead@desk)");
    expect(lines[2]).toBe("  samples  canary 5xx 0.00 % (0 of 12) p99 8.5 ms; stable 5xx 2.50 % (1 of 40) p99 -");
    expect(lines.slice(3)).toEqual([
      "  checks   00:16:45 step 1 (10 %) pass",
      "           00:16:50 step 2 (50 %) inconclusive: 12 of 20 canary requests",
    ]);
    const stale = releaseLines({ state: RELEASE }, 1_000_000 + 120_000);
    expect(stale[0]).toContain("STALE");
  });

  it("a release that says its interval and step start: when the step is judged", () => {
    const running = { ...RELEASE, state: "running" as const, control: "run" as const, interval_ms: 30_000 };
    const at = (state: ReleaseState, now: number) => releaseLines({ state }, now).find((l) => l.startsWith("  next"));
    expect(at({ ...running, step_started_at: 1_010_000 }, 1_020_500)).toBe(
      "  next     step 2 judged in 20 s (window 30 s)",
    );
    expect(at({ ...running, step_started_at: 1_010_000 }, 1_041_000)).toBe(
      "  next     step 2 judged as soon as its window holds enough requests",
    );
    expect(at({ ...running, state: "paused", step_started_at: 1_010_000 }, 1_020_000)).toContain("paused");
    // A release written by an older gray says neither: no line.
    expect(at(RELEASE, 1_020_000)).toBeUndefined();
  });
});

/** A fake terminal or pipe, and routers read from a list of readings (the last one repeated). */
function fakeIO(readings: FleetReading[], isTTY: boolean, hangAfter = Infinity) {
  let stop: (why: string) => void = () => undefined;
  let reads = 0;
  let out = "";
  let offCalled = false;
  const io: WatchIO = {
    readFleet: () =>
      reads >= hangAfter
        ? new Promise<FleetReading>(() => undefined)
        : Promise.resolve(readings[Math.min(reads++, readings.length - 1)]!),
    readRelease: async () => ({ none: true }),
    write: (t) => (out += t),
    isTTY,
    size: () => ({ columns: 60, rows: 10 }),
    onStop: (s) => {
      stop = s;
      return () => (offCalled = true);
    },
  };
  return { io, out: () => out, reads: () => reads, stop: (why: string) => stop(why), off: () => offCalled };
}

async function until(test: () => boolean, withinMs = 5000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error("not in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe("the loop (watch)", () => {
  const readings = [0, 1, 2, 3].map((i) =>
    reading(i * 20, { [A]: fakeStatus({ routes: { stable: { requests: 10 * i } } }) }),
  );

  it("not a terminal: frame after frame, a blank line between, no escape code; a signal ends it", async () => {
    const f = fakeIO(readings, false);
    const done = watch([A], 20, f.io);
    await until(() => f.reads() >= 3);
    f.stop("SIGINT");
    expect(await done).toBe("SIGINT");
    expect(f.off()).toBe(true);
    const out = f.out();
    expect(out).not.toContain("\x1b");
    const blocks = out.split(/\n(?=--- )/);
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    expect(blocks[0]).toMatch(/^--- 1970-01-01T00:00:00\.000Z {2}every 0\.02 s, first reading/);
    expect(blocks[1]).toMatch(/^--- 1970-01-01T00:00:00\.020Z {2}every 0\.02 s, over the last 0\.02 s ---/);
    expect(blocks[1]).toMatch(/^stable +100 % +500\.0 +10 /m);
  });

  it("a terminal: cursor hidden, each frame from home cut to the terminal's size, the cursor shown at the end", async () => {
    const f = fakeIO(readings, true);
    const done = watch([A], 20, f.io);
    await until(() => f.reads() >= 2);
    f.stop("SIGTERM");
    expect(await done).toBe("SIGTERM");
    const out = f.out();
    expect(out.startsWith(HIDE_CURSOR)).toBe(true);
    expect(out.endsWith(SHOW_CURSOR)).toBe(true);
    expect(out.split("\x1b[H").length - 1).toBeGreaterThanOrEqual(2);
    // eslint-disable-next-line no-control-regex
    const plain = out.replace(/\x1b\[[?0-9;]*[a-zA-Z]/g, "");
    expect(Math.max(...plain.split("\n").map((l) => l.length))).toBeLessThanOrEqual(59);
    // Each frame: at most rows - 1 lines, the table's first rows kept.
    const frames = out.split("\x1b[H").slice(1);
    for (const frame of frames) expect(frame.split("\n").length - 1).toBeLessThanOrEqual(9);
    expect(frames.at(-1)).toMatch(/^stable +100 % /m);
  });

  it("ends at once on a signal while a router has not answered yet, cursor shown", async () => {
    const f = fakeIO(readings, true, 1);
    const done = watch([A], 20, f.io);
    await until(() => f.out().includes("\x1b[H"));
    await new Promise((r) => setTimeout(r, 50));
    f.stop("SIGINT");
    expect(await done).toBe("SIGINT");
    expect(f.out().endsWith(SHOW_CURSOR)).toBe(true);
  });

  it("placeFrame clears every line to its end and the rest of the screen, cut to the terminal's size", () => {
    expect(placeFrame("ab\ncdef\n", { columns: 4 })).toBe("\x1b[Hab\x1b[K\ncde\x1b[K\n\x1b[J");
    expect(placeFrame("abcdef\n", {})).toBe("\x1b[Habcdef\x1b[K\n\x1b[J");
    expect(placeFrame("1\n2\n3\n4\n", { rows: 3 })).toBe("\x1b[H1\x1b[K\n2\x1b[K\n\x1b[J");
  });
});
