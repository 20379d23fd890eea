/**
 * npm run screenshot [-- --out FILE]: the status page during a real release, for docs/status-page.md.
 * Starts memcached and a router (2 workers) on the default runtime (GRAY_RUNTIME), runs load from
 * two client groups (flagged IPs, which the canary serves, and others split by weight) plus a
 * trickle of 5xx on stable, opens /gray/status in headless Chromium (harness/browser.ts), runs
 * `gray release` through a few steps, and saves the page mid-release (default docs/img/status-page.png)
 * and what `gray status --watch` printed at that moment (default docs/watch-frame.txt, for the README).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { fetchStatus } from "../node-src/cli/status.ts";
import { launchBrowser, watchedPage } from "./browser.ts";
import { spawnGray } from "./gray-cli.ts";
import { Load, loopbackClients } from "./load.ts";
import { MemcachedServer } from "./memcached.ts";
import { ROOT } from "./paths.ts";
import { createRuntime } from "./pick-runtime.ts";
import { flagIps } from "./rules.ts";
import { RouterStack } from "./stack.ts";

const { values } = parseArgs({
  options: {
    out: { type: "string", default: join(ROOT, "docs", "img", "status-page.png") },
    "frame-out": { type: "string", default: join(ROOT, "docs", "watch-frame.txt") },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(
    "npm run screenshot [-- --out FILE] [--frame-out FILE]   the status page during a release (default docs/img/status-page.png),\n" +
      "                                                        and a frame of gray status --watch at the same moment (default docs/watch-frame.txt)",
  );
  process.exit(0);
}

/** The steps the release walks, and how long each is watched. */
const STEPS = "10,30,60,100";
const INTERVAL_S = 8;
/** The page is shot once the release has reached this step: a chart with some history and a step or two behind it. */
const SHOT_AT_STEP = 3;

async function until(what: string, test: () => Promise<boolean>, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${withinMs / 1000} s`);
    await sleep(250);
  }
}

/** The last whole block --watch printed (each starts with a "--- " line), under the command that printed it, the URL shortened. */
function lastFrame(output: string, args: string[], statusUrl: string): string {
  const blocks = output.split(/^(?=--- )/m).filter((b) => b.startsWith("--- "));
  const whole = blocks.at(-2) ?? blocks.at(-1);
  if (whole === undefined) throw new Error(`gray status --watch printed no frame:\n${output}`);
  const url = "http://127.0.0.1:8080/gray/status";
  return `$ gray ${args.join(" ")} | cat\n${whole.trimEnd()}\n`.replaceAll(statusUrl, url);
}

async function main(): Promise<void> {
  const runtime = await createRuntime();
  const memcached = await MemcachedServer.start(runtime);
  const stops: (() => Promise<unknown>)[] = [() => memcached.stop()];
  try {
    const router = await RouterStack.start({ runtime, memcached, workers: 2, options: { cache_ttl_ms: 200 } });
    stops.unshift(() => router.stop());
    const flagged = loopbackClients(4, 120);
    await flagIps(memcached.address, "", flagged);
    const url = `${router.url}/`;
    const seconds = 180;
    const loads = [
      Load.start({ url, sources: flagged, durationMs: seconds * 1000, thinkMs: 40 }),
      Load.start({ url, sources: loopbackClients(16, 121), durationMs: seconds * 1000, thinkMs: 40 }),
      // A few failing answers on stable, so the 5xx chart has something on it.
      Load.start({ url: `${router.url}/fail`, sources: ["127.122.0.1"], durationMs: seconds * 1000, thinkMs: 400 }),
    ];
    stops.unshift(() => Promise.all(loads.map((l) => l.stop())));
    const browser = await launchBrowser();
    stops.unshift(() => browser.close());
    const { page, problems } = await watchedPage(browser, { width: 1280, height: 1000 });
    await page.goto(router.statusUrl);
    console.log(`page open at ${router.statusUrl}; gray release --steps ${STEPS} --interval ${INTERVAL_S}s`);
    // Some history before the release starts: the charts show the step from the steady state.
    await sleep(20000);
    const release = spawnGray(
      [
        "release",
        "--steps",
        STEPS,
        "--interval",
        `${INTERVAL_S}s`,
        "--status-url",
        router.statusUrl,
        "--p99-floor-ms",
        "100",
      ],
      { GRAY_MEMCACHED: memcached.address },
    );
    stops.unshift(async () => {
      if (release.child.exitCode === null) release.child.kill("SIGINT");
      return release.done;
    });
    // The terminal view of the same moment, piped: one block per interval.
    const watchArgs = ["status", "--watch", "--interval", "2s", "--status-url", router.statusUrl];
    const watch = spawnGray(watchArgs, { GRAY_MEMCACHED: memcached.address });
    stops.unshift(async () => {
      if (watch.child.exitCode === null) watch.child.kill("SIGINT");
      return watch.done;
    });
    await until(
      `the release at step ${SHOT_AT_STEP}`,
      async () => {
        if (release.child.exitCode !== null)
          throw new Error(`gray release ended early:\n${release.stdout()}${release.stderr()}`);
        const step = (await fetchStatus(router.statusUrl)).release?.step;
        return typeof step === "number" && step >= SHOT_AT_STEP;
      },
      (SHOT_AT_STEP + 2) * INTERVAL_S * 3000,
    );
    // Two more seconds: the page has polled the step's state and the charts show its traffic.
    await sleep(2500);
    if (problems.errors.length > 0) throw new Error(`the page reported problems:\n${problems.errors.join("\n")}`);
    mkdirSync(dirname(values.out), { recursive: true });
    await page.screenshot({ path: values.out, fullPage: true });
    console.log(`wrote ${values.out}`);
    writeFileSync(values["frame-out"], lastFrame(watch.stdout(), watchArgs, router.statusUrl));
    console.log(`wrote ${values["frame-out"]}`);
    release.child.kill("SIGINT");
    const done = await release.done;
    console.log(`gray release stopped (exit ${done.code}): ${done.stdout.trim().split("\n").at(-1) ?? ""}`);
  } finally {
    for (const stop of stops) await stop().catch((err: unknown) => console.error(err));
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
