/**
 * `gray release` against a real router under load: a healthy canary is walked up to 100 %, a
 * failing one (its every answer a 500) is sent back to weight 0 within one interval.
 */
import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagStore } from "../harness/flags.ts";
import { GRAY_BIN, gray } from "../harness/gray-cli.ts";
import { Load, loopbackClients } from "../harness/load.ts";
import { AppCopy, RouterStack } from "../harness/stack.ts";
import type { Outcome, StepEvent } from "../node-src/cli/release.ts";
import { sharedMemcached, testRuntime, useRouter } from "./support.ts";

/** 64 clients whose buckets put none under 1 % and a few under 10 %. */
const CLIENTS = loopbackClients(64, 100);
const ROUTER_OPTIONS = { cache_ttl_ms: 200 };
const env = () => ({ GRAY_MEMCACHED: sharedMemcached().address });

describe("gray release, healthy canary", () => {
  const ctx = useRouter({ options: ROUTER_OPTIONS });

  it("raises the weight 1 → 10 → 50 → 100 under load, a line per step, without a failed request", async () => {
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 30_000 });
    const r = await gray(
      [
        "release",
        "--steps",
        "1,10,50,100",
        "--interval",
        "1s",
        "--max-error-rate",
        "1%",
        "--status-url",
        ctx.router.statusUrl,
      ],
      env(),
    );
    const summary = await load.stop();
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines.map((l) => /^step (\d)\/4 {2}weight (\d+) %/.exec(l)?.slice(1, 3).join(" "))).toEqual([
      "1 1",
      "2 10",
      "3 50",
      "4 100",
      undefined,
    ]);
    expect(lines.at(-1)).toBe("released: weight 100 %");
    expect(lines[3]).toMatch(/canary 5xx 0\.00 % \(0 of \d+\)/);
    expect(await ctx.flags.get("gray:weight")).toBe("100");
    expect(summary.routes.canary).toBeGreaterThan(0);
    expect(summary).toMatchObject({ failed: 0, non2xx: 0 });
  });
});

/** Runs the CLI on a terminal (a pseudo-terminal from util-linux's script), returning what the terminal got. */
function grayOnTerminal(args: string[]): Promise<{ code: number; output: string }> {
  const quote = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
  const command = [process.execPath, GRAY_BIN, ...args].map(quote).join(" ");
  return new Promise((resolve) => {
    execFile(
      "script",
      ["-qefc", command, "/dev/null"],
      { env: { ...process.env, ...env() }, timeout: 30_000 },
      (err, stdout) =>
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, output: stdout }),
    );
  });
}

describe("gray release on a terminal", () => {
  const ctx = useRouter({ options: ROUTER_OPTIONS });

  it("redraws one progress line per step, in place", async () => {
    const load = Load.start({ url: ctx.router.url, sources: CLIENTS, durationMs: 30_000 });
    const r = await grayOnTerminal([
      "release",
      "--steps",
      "10,100",
      "--interval",
      "2500ms",
      "--status-url",
      ctx.router.statusUrl,
    ]);
    await load.stop();
    expect(r.code).toBe(0);
    const lines = r.output.split(/\r?\n/).filter((l) => l !== "");
    expect(lines).toHaveLength(3);
    for (const [i, line] of lines.slice(0, 2).entries()) {
      // Drawn again at every reading of the status (once a second), each time over the last.
      const drawings = line.split("\r\x1b[K").filter((d) => d !== "");
      expect(drawings.length, line).toBeGreaterThanOrEqual(2);
      expect(drawings.every((d) => d.startsWith(`step ${i + 1}/2  weight ${i === 0 ? 10 : 100} %  [`))).toBe(true);
      expect(drawings.at(-1)).toMatch(/\[#{20}\] 2\.5 s\/2\.5 s/);
    }
    expect(lines[2]).toBe("released: weight 100 %");
  });
});

describe("gray release, failing canary", () => {
  let broken: AppCopy;
  let router: RouterStack;
  let flags: FlagStore;

  beforeAll(async () => {
    const runtime = await testRuntime();
    broken = await AppCopy.start(runtime, "canary", 500);
    router = await RouterStack.start({
      runtime,
      memcached: sharedMemcached(),
      options: ROUTER_OPTIONS,
      canary: [broken.address],
    });
    flags = new FlagStore(sharedMemcached().address);
    await flags.flush();
  });
  afterAll(async () => {
    flags?.close();
    await router?.stop();
    await broken?.stop();
  });

  it("sets the weight back to 0 within one interval, exits 3 with the figures, and stable serves everyone again", async () => {
    // Status reads once a second: a breach shows at the second or third, well inside the interval.
    const interval = 4000;
    const load = Load.start({ url: router.url, sources: CLIENTS, durationMs: 30_000 });
    const r = await gray(
      [
        "release",
        "--steps",
        "1,10,50,100",
        "--interval",
        `${interval}ms`,
        "--max-error-rate",
        "1%",
        "--status-url",
        router.statusUrl,
        "--json",
      ],
      env(),
    );
    expect(r.code).toBe(3);
    expect(await flags.get("gray:weight")).toBe("0");
    const events = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as StepEvent | Outcome);
    const last = events.at(-1) as Outcome & { event: "rolled_back" };
    expect(events.slice(0, -1).every((e) => e.event === "step" && e.canary.rate === 0)).toBe(true);
    expect(last).toMatchObject({ event: "rolled_back", maxErrorRate: 0.01 });
    expect(last.weight).toBeGreaterThan(1);
    expect(last.canary.rate).toBeGreaterThan(0.01);
    expect(last.canary.errors).toBe(last.canary.requests);
    expect(last.elapsedMs).toBeLessThan(interval);
    // Once the weight 0 has reached the router, no client meets the broken canary.
    await sleep(1000);
    const after = load.now();
    await sleep(1000);
    await load.stop();
    expect(load.summary(after).failed).toBe(0);
    expect(Object.keys(load.summary(after).routes)).toEqual(["stable"]);
  });

  it("says what tripped it in one line without --json", async () => {
    await flags.set("gray:weight", "0");
    const load = Load.start({ url: router.url, sources: CLIENTS, durationMs: 30_000 });
    const r = await gray(["release", "--steps", "50", "--interval", "3s", "--status-url", router.statusUrl], env());
    await load.stop();
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(
      /^gray release: rolled back to weight 0 at step 1\/1 \(weight 50 %, after [\d.]+ s\): canary 5xx 100\.00 % \(\d+ of \d+\) is over 1\.00 %; stable 5xx 0\.00 %/,
    );
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("exits 1 naming the status URL it cannot read, with nothing written", async () => {
    await flags.delete("gray:weight");
    const r = await gray(["release", "--status-url", "http://127.0.0.1:1/gray/status"], env());
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("http://127.0.0.1:1/gray/status");
    expect(await flags.get("gray:weight")).toBeUndefined();
  });
});
