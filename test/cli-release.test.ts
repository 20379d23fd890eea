/**
 * `gray release` against real routers under load: a healthy canary walked up to 100 %; no traffic,
 * a failing canary, a slow canary (3× stable's latency) and a router that does not answer rolled
 * back (exit 3, the reason in the last line); an incident on both versions held, not blamed on the
 * canary; a release never lowers a weight; one release at a time (a second exits 2), steered from
 * other processes (pause, resume, abort), SIGINT and SIGTERM rolling back, a dead one shown stale
 * and cleared by abort; `gray status` over several routers.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagStore } from "../harness/flags.ts";
import { type RunningGray, gray, spawnGray } from "../harness/gray-cli.ts";
import { Load, loopbackClients } from "../harness/load.ts";
import { readRules, setWeight } from "../harness/rules.ts";
import { AppCopy, RouterStack } from "../harness/stack.ts";
import { weightOf } from "../lua-src/gray/document.ts";
import type { ReleaseEvent } from "../node-src/cli/release.ts";
import { type ReleaseState, releaseKey } from "../node-src/cli/release-state.ts";
import { AdminStore } from "../node-src/cli/store.ts";
import { resetStore, sharedMemcached, testRuntime, useRouter } from "./support.ts";

/** 64 clients whose buckets put none under 1 % and a few under 10 %. */
const CLIENTS = loopbackClients(64, 100);
const ROUTER_OPTIONS = { cache_ttl_ms: 200 };
/**
 * Healthy runs compare p99s with a 100 ms floor: 64 clients and both versions on this machine's 2
 * cores make either version's p99 swing between 10 and 60 ms. The slow canary's test keeps the default.
 */
const FLOOR = ["--p99-floor-ms", "100"];
const env = () => ({ GRAY_MEMCACHED: sharedMemcached().address });
const DEAD_ROUTER = "http://127.0.0.1:1/gray/status";

async function canaryWeight(): Promise<number> {
  const doc = await readRules(sharedMemcached().address);
  const def = doc?.canaries.canary;
  return def === undefined ? 0 : weightOf(def);
}

async function releaseState(): Promise<ReleaseState | undefined> {
  const store = new AdminStore(sharedMemcached().address);
  try {
    const text = await store.get(releaseKey(""));
    return text === undefined ? undefined : (JSON.parse(text) as ReleaseState);
  } finally {
    store.close();
  }
}

function events(stdout: string): ReleaseEvent[] {
  return stdout
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as ReleaseEvent);
}

async function until(what: string, test: () => Promise<boolean> | boolean, withinMs = 15_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms: ${what}`);
    await sleep(100);
  }
}

/** A router in front of app copies of its own (slow, failing), with load helpers. */
function useCopies(stable: { status?: number; delayS?: number }, canary: { status?: number; delayS?: number }) {
  const ctx = {} as { router: RouterStack; flags: FlagStore; stable: AppCopy; canary: AppCopy };
  beforeAll(async () => {
    const runtime = await testRuntime();
    ctx.stable = await AppCopy.start(runtime, "stable", stable.status ?? 200, stable.delayS ?? 0);
    ctx.canary = await AppCopy.start(runtime, "canary", canary.status ?? 200, canary.delayS ?? 0);
    ctx.router = await RouterStack.start({
      runtime,
      memcached: sharedMemcached(),
      options: ROUTER_OPTIONS,
      stable: [ctx.stable.address],
      canary: [ctx.canary.address],
    });
    ctx.flags = new FlagStore(sharedMemcached().address);
    await resetStore(ctx.router, ctx.flags, sharedMemcached().address);
  });
  afterAll(async () => {
    ctx.flags?.close();
    await ctx.router?.stop();
    await ctx.stable?.stop();
    await ctx.canary?.stop();
  });
  return ctx;
}

/** gray release 10 → 50 → 100 in 1 s steps, judged on 20 canary requests, against the router at `statusUrl`. */
function releaseArgs(statusUrl: string, ...more: string[]): string[] {
  return [
    "release",
    "--steps",
    "10,50,100",
    "--interval",
    "1s",
    "--min-requests",
    "20",
    ...FLOOR,
    "--status-url",
    statusUrl,
    ...more,
  ];
}

describe("gray release, healthy canary", () => {
  const ctx = useRouter({ options: ROUTER_OPTIONS });

  it("raises the weight 10 → 50 → 100 under load, a line per step, without a failed request", async () => {
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 30_000 });
    const r = await gray(releaseArgs(ctx.router.statusUrl), env());
    const summary = await load.stop();
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(
      lines.map((l) => /^step (\d)\/3 {2}weight (\d+) % {2}after [\d.]+ s: passed/.exec(l)?.slice(1, 3).join(" ")),
    ).toEqual(["1 10", "2 50", "3 100", undefined]);
    expect(lines.at(-1)).toBe("released: canary at weight 100 %");
    expect(lines[2]).toMatch(/canary 5xx 0\.00 % \(0 of \d+\) p99 [\d.]+ ms {2}stable 5xx 0\.00 % /);
    expect(await canaryWeight()).toBe(100);
    expect(await releaseState()).toBeUndefined();
    expect(summary.routes.canary).toBeGreaterThan(0);
    expect(summary).toMatchObject({ failed: 0, non2xx: 0 });
  });

  it("never lowers a weight: from 60 % it skips 10 and 50, and says so", async () => {
    await setWeight(sharedMemcached().address, "", 60);
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 30_000 });
    const r = await gray(releaseArgs(ctx.router.statusUrl, "--json"), env());
    await load.stop();
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const all = events(r.stdout);
    expect(all[0]).toMatchObject({ event: "start", from_weight: 60, steps: [100], skipped: [10, 50] });
    expect(all.filter((e) => e.event === "step")).toEqual([{ event: "step", step: 3, of: 3, weight: 100 }]);
    expect(all.at(-1)).toMatchObject({ event: "done", outcome: "released", weight: 100, exit: 0 });
  });

  it("with no traffic, rolls back as inconclusive: never a pass on no evidence", async () => {
    const r = await gray(
      [
        "release",
        "--steps",
        "50,100",
        "--interval",
        "1s",
        "--max-wait",
        "2s",
        "--status-url",
        ctx.router.statusUrl,
        "--json",
      ],
      env(),
    );
    expect(r.code).toBe(3);
    const all = events(r.stdout);
    expect(all.some((e) => e.event === "verdict" && e.verdict === "pass")).toBe(false);
    expect(all.find((e) => e.event === "verdict")).toMatchObject({
      verdict: "inconclusive",
      reasons: ["0 of 50 canary requests"],
    });
    expect(all.at(-1)).toMatchObject({
      event: "done",
      outcome: "rolled_back",
      kind: "inconclusive",
      step: 1,
      weight: 50,
      exit: 3,
    });
    expect(await canaryWeight()).toBe(0);
  });

  it("a router that does not answer is missing evidence: inconclusive, rolled back, and named", async () => {
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 30_000 });
    const r = await gray(
      [
        "release",
        "--steps",
        "50",
        "--interval",
        "1s",
        "--max-wait",
        "1s",
        "--min-requests",
        "20",
        ...FLOOR,
        "--status-url",
        ctx.router.statusUrl,
        "--status-url",
        DEAD_ROUTER,
      ],
      env(),
    );
    await load.stop();
    expect(r.code).toBe(3);
    const last = r.stderr.trim().split("\n").at(-1)!;
    expect(last).toMatch(/^gray release: rolled back to weight 0 at step 1\/1 \(weight 50 %\), inconclusive: /);
    expect(last).toContain(`no figures from ${DEAD_ROUTER}`);
    expect(await canaryWeight()).toBe(0);
  });

  it("gray status sums several routers and names the one that does not answer (exit 1)", async () => {
    for (let i = 0; i < 5; i++) await fetch(ctx.router.url);
    await sleep(1100);
    const one = await gray(["status", "--status-url", ctx.router.statusUrl, "--json"], env());
    const r = await gray(
      [
        "status",
        "--status-url",
        ctx.router.statusUrl,
        "--status-url",
        `${ctx.router.statusUrl}?copy=2`,
        "--status-url",
        DEAD_ROUTER,
        "--json",
      ],
      env(),
    );
    expect(r.code).toBe(1);
    const fleet = JSON.parse(r.stdout) as {
      sum: { routes: { stable: { requests: number } } };
      missing: { url: string }[];
    };
    const single = JSON.parse(one.stdout) as { routes: { stable: { requests: number } } };
    // The same router twice: twice its counts (give or take requests in between: there are none).
    expect(fleet.sum.routes.stable.requests).toBe(2 * single.routes.stable.requests);
    expect(fleet.missing.map((m) => m.url)).toEqual([DEAD_ROUTER]);
    const text = await gray(["status", "--status-url", ctx.router.statusUrl, "--status-url", DEAD_ROUTER], env());
    expect(text.code).toBe(1);
    expect(text.stdout).toContain("1 of 2 routers answered");
    expect(text.stdout).toContain(`${DEAD_ROUTER}  NO ANSWER`);
    expect(text.stdout).toMatch(/^release: none running$/m);
  });
});

describe("gray release, failing canary", () => {
  const ctx = useCopies({}, { status: 500 });

  it("rolls back within one interval on errors, exit 3 with the figures", async () => {
    const interval = 4000;
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 30_000 });
    const r = await gray(
      [
        "release",
        "--steps",
        "10,50",
        "--interval",
        `${interval}ms`,
        "--min-requests",
        "20",
        "--status-url",
        ctx.router.statusUrl,
        "--json",
      ],
      env(),
    );
    expect(r.code).toBe(3);
    expect(await canaryWeight()).toBe(0);
    const all = events(r.stdout);
    const verdict = all.find((e) => e.event === "verdict")!;
    expect(verdict).toMatchObject({ verdict: "fail", step: 1, weight: 10 });
    expect((verdict as { elapsed_ms: number }).elapsed_ms).toBeLessThan(interval);
    expect(all.at(-1)).toMatchObject({ event: "done", outcome: "rolled_back", kind: "errors", exit: 3 });
    expect((all.at(-1) as { reason: string }).reason).toMatch(
      /^canary 5xx 100\.00 % is over stable's 0\.00 % \+ 1\.00 %$/,
    );
    await sleep(1000);
    const after = load.now();
    await sleep(1000);
    await load.stop();
    expect(Object.keys(load.summary(after).routes)).toEqual(["stable"]);
  });
});

describe("gray release, slow canary", () => {
  // Stable answers in 50 ms, the canary in 150 ms: 3× slower, same 200s.
  const ctx = useCopies({ delayS: 0.05 }, { delayS: 0.15 });

  it("rolls back on latency: canary p99 over 1.5 × stable's", async () => {
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 30_000 });
    const r = await gray(
      [
        "release",
        "--steps",
        "50,100",
        "--interval",
        "2s",
        "--min-requests",
        "20",
        "--status-url",
        ctx.router.statusUrl,
      ],
      env(),
    );
    await load.stop();
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(
      /^gray release: rolled back to weight 0 at step 1\/2 \(weight 50 %\), latency: canary p99 [\d.]+ ms is over 1\.5 × stable's [\d.]+ ms$/,
    );
    expect(await canaryWeight()).toBe(0);
  });
});

describe("gray release, an incident on both versions", () => {
  const ctx = useCopies({ status: 500 }, { status: 500 });

  it("holds (inconclusive), does not blame the canary, and goes on once both recover", async () => {
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 40_000 });
    const run = spawnGray(
      [
        "release",
        "--steps",
        "50,100",
        "--interval",
        "1s",
        "--max-wait",
        "20s",
        "--min-requests",
        "20",
        ...FLOOR,
        "--status-url",
        ctx.router.statusUrl,
        "--json",
      ],
      env(),
    );
    await until("an inconclusive verdict", () => run.stdout().includes('"verdict":"inconclusive"'));
    await sleep(2000);
    // The canary first: a window where only stable fails is no fault of the canary's either.
    await ctx.canary.restart("canary");
    await ctx.stable.restart("stable");
    const r = await run.done;
    await load.stop();
    const all = events(r.stdout);
    expect(
      all.some((e) => e.event === "rollback"),
      all
        .filter((e) => e.event !== "check")
        .map((e) => JSON.stringify(e))
        .join("\n"),
    ).toBe(false);
    const held = all.find((e) => e.event === "verdict" && e.verdict === "inconclusive") as { reasons: string[] };
    expect(held.reasons[0]).toMatch(/^both versions failing: canary 5xx [\d.]+ %, stable [\d.]+ % \(over 1\.00 %\)$/);
    expect(r.code).toBe(0);
    expect(all.at(-1)).toMatchObject({ event: "done", outcome: "released", weight: 100 });
  });
});

describe("gray release, one at a time and steered from other shells", () => {
  const ctx = useRouter({ options: ROUTER_OPTIONS });
  let running: RunningGray | undefined;
  afterAll(() => {
    running?.child.kill("SIGKILL");
  });

  // Steps long enough (5 s) that a loaded machine's slow CLI starts still find the release running.
  const start = (extra: string[] = []) =>
    spawnGray(
      [
        "release",
        "--steps",
        "10,50,100",
        "--interval",
        "5s",
        "--min-requests",
        "20",
        ...FLOOR,
        "--status-url",
        ctx.router.statusUrl,
        ...extra,
      ],
      env(),
    );

  it("refuses a second release (exit 2, naming the first); pause, resume and abort come from other processes", async () => {
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 60_000 });
    running = start();
    await until("the release holds its key", async () => (await releaseState())?.step === 1);
    const second = await gray(["release", "--status-url", ctx.router.statusUrl], env());
    expect(second.code).toBe(2);
    expect(second.stderr).toMatch(
      new RegExp(
        `^gray release: another release holds gray:release: release of canary by \\S+@\\S+ \\(pid ${running.child.pid}\\), step 1/3 at weight 10 %`,
      ),
    );

    const paused = await gray(["release", "pause"], env());
    expect(paused.code).toBe(0);
    expect(paused.stdout).toMatch(/^paused: release of canary .*: paused/);
    const status = await gray(["status", "--status-url", ctx.router.statusUrl], env());
    expect(status.stdout).toMatch(
      /^release: release of canary by .*, step \d\/3 at weight \d+ %, started \d+ s ago: paused(; last check \w+)?$/m,
    );
    const heldAt = (await releaseState())!.weight;
    await sleep(6000); // longer than an interval: a paused release does not step on
    expect((await releaseState())!.weight).toBe(heldAt);
    expect(running.stdout()).toMatch(/: paused by \S+@\S+ \(gray release resume\)\n/);

    const resumed = await gray(["release", "resume"], env());
    expect(resumed.code).toBe(0);
    await until("a step after the resume", () => running!.stdout().includes("resumed by"));

    const aborted = await gray(["release", "abort"], env());
    expect(aborted.code).toBe(0);
    expect(aborted.stdout.trim()).toMatch(/^aborted the release of canary by \S+: it rolled back to weight 0$/);
    const r = await running.done;
    await load.stop();
    expect(r.code).toBe(3);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(
      /^gray release: rolled back to weight 0 at step \d\/3 \(weight \d+ %\), aborted: aborted by \S+@\S+$/,
    );
    expect(await canaryWeight()).toBe(0);
    expect(await releaseState()).toBeUndefined();
    const none = await gray(["release", "abort"], env());
    expect(none.code).toBe(2);
  }, 90_000);

  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    it(`${signal} rolls back to weight 0 and exits ${code}`, async () => {
      const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 30_000 });
      running = start();
      await until("weight 10 written", async () => (await canaryWeight()) === 10);
      running.child.kill(signal);
      const r = await running.done;
      await load.stop();
      expect(r.code).toBe(code);
      expect(r.stderr.trim().split("\n").at(-1)).toMatch(
        new RegExp(
          `^gray release: rolled back to weight 0 at step 1/3 \\(weight 10 %\\), interrupted: interrupted by ${signal}$`,
        ),
      );
      expect(await canaryWeight()).toBe(0);
      expect(await releaseState()).toBeUndefined();
    });
  }

  it("a release whose process died is shown stale once its lease is over; abort clears it and sets the weight to 0", async () => {
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 30_000 });
    running = start(["--lease", "2s"]);
    await until("weight 10 written", async () => (await canaryWeight()) === 10);
    running.child.kill("SIGKILL");
    await running.done;
    await load.stop();
    await sleep(2500);
    const shown = await gray(["release", "show"], env());
    expect(shown.stdout).toMatch(
      /: STALE, its lease expired \d+ s ago \(its process is gone\?\); gray release abort clears it/,
    );
    const refused = await gray(["release", "--status-url", ctx.router.statusUrl], env());
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("STALE");
    const paused = await gray(["release", "pause"], env());
    expect(paused.code).toBe(2);
    const cleared = await gray(["release", "abort"], env());
    expect(cleared.code).toBe(0);
    expect(cleared.stdout.trim()).toMatch(/^cleared the stale release of canary by \S+: canary's weight set to 0$/);
    expect(await canaryWeight()).toBe(0);
    expect(await releaseState()).toBeUndefined();
  });
});

describe("gray release on a terminal", () => {
  const ctx = useRouter({ options: ROUTER_OPTIONS });

  it("redraws one progress line per step, in place, then says the verdict", async () => {
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 30_000 });
    const run = spawnGray(
      [
        "release",
        "--steps",
        "10,100",
        "--interval",
        "2500ms",
        "--min-requests",
        "20",
        ...FLOOR,
        "--status-url",
        ctx.router.statusUrl,
      ],
      env(),
      { terminal: true },
    );
    const r = await run.done;
    await load.stop();
    expect(r.code).toBe(0);
    const lines = r.stdout.split(/\r?\n/).filter((l) => l !== "");
    expect(lines).toHaveLength(3);
    for (const [i, line] of lines.slice(0, 2).entries()) {
      const drawings = line.split("\r\x1b[K").filter((d) => d !== "");
      expect(drawings.length, line).toBeGreaterThanOrEqual(3);
      expect(
        drawings.slice(0, -1).every((d) => d.startsWith(`step ${i + 1}/2  weight ${i === 0 ? 10 : 100} %  [`)),
      ).toBe(true);
      expect(drawings.at(-1)).toMatch(
        new RegExp(`^step ${i + 1}/2  weight ${i === 0 ? 10 : 100} %  after [\\d.]+ s: passed`),
      );
    }
    expect(lines[2]).toBe("released: canary at weight 100 %");
  });
});
