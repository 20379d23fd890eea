/**
 * `gray release`: a canary's weight raised step by step, each step judged against stable on the
 * routers' counters (../release.ts), one release at a time per key_prefix (../release-state.ts).
 * `gray release pause|resume|abort|show` steer or show the running one from any shell.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { weightOf } from "../../../lua-src/gray/document.ts";
import { percentToBuckets, setWeight } from "../../rules/edit.ts";
import { author } from "../../rules/revisions.ts";
import { type Command, type Context, type Output, UsageError, stringFlag } from "../command.ts";
import { readFleet, routersHelp, routersOf, routersOptions } from "../fleet.ts";
import {
  type Control,
  type ReleaseState,
  describeRelease,
  endRelease,
  isStale,
  newReleaseId,
  ownerHere,
  readRelease,
  releaseKey,
  takeRelease,
  updateRelease,
} from "../release-state.ts";
import {
  type ReleaseEvent,
  type ReleasePlan,
  describe,
  durationFlag,
  parseRate,
  parseSteps,
  runRelease,
  stepsFrom,
} from "../release.ts";
import { canaryHelp, canaryOf, canaryOption, readRules, runEdit, writeHelp, writeOptions } from "../rules-command.ts";
import { RouterError } from "../status.ts";
import { AdminStore, StoreError, withStore } from "../store.ts";

/** Another release holds the key, or there is none to steer: exit 2, as bad input. */
const REFUSED = 2;

function rateFlag(ctx: Context, name: string, fallback?: string): number | undefined {
  const raw = stringFlag(ctx, name) ?? fallback;
  if (raw === undefined) return undefined;
  const rate = parseRate(raw);
  if (rate === undefined)
    throw new UsageError(`--${name} takes a percentage from 0 to 100, e.g. 1%: ${JSON.stringify(raw)}`);
  return rate;
}

function numberFlag(ctx: Context, name: string, fallback: string | undefined, integer: boolean): number | undefined {
  const raw = stringFlag(ctx, name) ?? fallback;
  if (raw === undefined || raw === "off") return undefined;
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || !(n > 0) || (integer && !Number.isInteger(n)))
    throw new UsageError(`--${name} takes a ${integer ? "whole " : ""}number above 0: ${JSON.stringify(raw)}`);
  return n;
}

/** pause, resume, abort, show: the running release, from any shell. */
async function steer(ctx: Context, action: "pause" | "resume" | "abort" | "show"): Promise<Output> {
  return withStore(ctx.memcached, async (store) => {
    const found = await readRelease(store, ctx.prefix);
    if (found === undefined) {
      if (action === "show") return { text: "no release running", data: { release: null } };
      return {
        text: `no release running (nothing at ${releaseKey(ctx.prefix)})`,
        data: { release: null },
        code: REFUSED,
      };
    }
    const s = found.state;
    if (action === "show") return { text: describeRelease(s), data: { release: s, stale: isStale(s) } };
    const by = author();
    if (isStale(s)) {
      if (action !== "abort")
        return {
          text: `${describeRelease(s)}: only abort applies to it`,
          data: { release: s, stale: true },
          code: REFUSED,
        };
      // Its process is gone: this shell does the rollback, then frees the key.
      if (s.canary !== "?")
        await runEdit(ctx, `release abort (stale release of ${s.canary} by ${s.owner}): weight 0`, (doc) => {
          const set = doc.canaries[s.canary] === undefined ? undefined : setWeight(doc, s.canary, 0);
          return { changed: set !== undefined && set.was !== set.now, result: undefined };
        });
      await store.delete(releaseKey(ctx.prefix));
      return {
        text: `cleared the stale release of ${s.canary} by ${s.owner}: ${s.canary}'s weight set to 0`,
        data: { cleared: s, weight: 0 },
      };
    }
    const control: Control = action === "pause" ? "pause" : action === "resume" ? "run" : "abort";
    await updateRelease(store, ctx.prefix, s.id, (now) => ({ ...now, control, control_by: by }));
    // The running release answers at its next reading of the routers (about a second).
    const deadline = Date.now() + Math.max(5000, s.lease_until - Date.now());
    for (;;) {
      const now = (await readRelease(store, ctx.prefix))?.state;
      if (action === "abort" && now?.id !== s.id)
        return {
          text: `aborted the release of ${s.canary} by ${s.owner}: it rolled back to weight 0`,
          data: { aborted: s.id },
        };
      if (action === "pause" && now?.state === "paused")
        return { text: `paused: ${describeRelease(now)}`, data: { release: now } };
      if (action === "resume" && now !== undefined && now.state !== "paused")
        return { text: `resumed: ${describeRelease(now)}`, data: { release: now } };
      if (Date.now() > deadline)
        throw new StoreError(
          `the release of ${s.canary} by ${s.owner} did not answer the ${action} within ${Math.round((deadline - Date.now() + 5000) / 1000)} s`,
        );
      await sleep(200);
    }
  });
}

export const release: Command = {
  name: "release",
  usage:
    "gray release [--canary NAME] [--steps 1,10,50,100] [--interval 30s] [--min-requests 50] [--status-url URL ...] | gray release pause|resume|abort|show",
  summary:
    "raise a canary's weight step by step, each step judged against stable (5xx, p99) on the routers' counters; rolled back to 0 on a failure or no evidence (exit 3); one at a time, steered from any shell",
  flags: [
    "  --steps W,W,...        weights in percent, increasing (default 1,10,50,100); steps below the canary's weight are skipped",
    "  --interval D           how long each step is watched: 30s, 500ms, 2m (default 30s)",
    "  --min-requests N       canary requests a step needs to be judged (default 50); fewer: inconclusive",
    "  --max-wait D           how long an inconclusive step holds past its interval before rolling back (default 5 × interval)",
    "  --max-error-rate-delta R  the canary's 5xx rate may exceed stable's by R points (default 1%)",
    "  --max-p99-ratio X      the canary's p99 may be X × stable's (default 1.5; off to turn it off)",
    "  --p99-floor-ms N       p99s under N ms count as N in the ratio: noise, not the canary (default 25)",
    "  --max-error-rate R     absolute gate on the canary's 5xx rate, e.g. 2% (default off)",
    "  --max-p99-ms N         absolute gate on the canary's p99 in ms (default off)",
    "  --failure-limit K      failed checks before rolling back (default 1)",
    "  --lease D              how long the release's state outlives its process if it dies (default 15s)",
    ...routersHelp,
    canaryHelp,
    ...writeHelp,
  ],
  options: {
    ...canaryOption,
    ...writeOptions,
    ...routersOptions,
    steps: { type: "string" },
    interval: { type: "string" },
    "min-requests": { type: "string" },
    "max-wait": { type: "string" },
    "max-error-rate-delta": { type: "string" },
    "max-p99-ratio": { type: "string" },
    "max-error-rate": { type: "string" },
    "max-p99-ms": { type: "string" },
    "p99-floor-ms": { type: "string" },
    "failure-limit": { type: "string" },
    lease: { type: "string" },
  },
  prepare: (ctx) => {
    const action = ctx.args[0];
    if (action !== undefined) {
      if (action !== "pause" && action !== "resume" && action !== "abort" && action !== "show")
        throw new UsageError(`unexpected argument ${JSON.stringify(action)} (pause, resume, abort or show)`);
      if (ctx.args.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(ctx.args[1])}`);
      return () => steer(ctx, action);
    }
    const allSteps = parseSteps(stringFlag(ctx, "steps", "1,10,50,100"));
    if (allSteps === undefined)
      throw new UsageError(
        `--steps takes increasing weights from 0 to 100, e.g. 1,10,50,100: ${JSON.stringify(stringFlag(ctx, "steps", ""))}`,
      );
    for (const step of allSteps) percentToBuckets(step);
    const intervalMs = durationFlag(ctx, "interval", "30s");
    const plan: Omit<ReleasePlan, "fromWeight"> = {
      canary: canaryOf(ctx),
      allSteps,
      intervalMs,
      maxWaitMs: stringFlag(ctx, "max-wait") === undefined ? 5 * intervalMs : durationFlag(ctx, "max-wait", ""),
      minRequests: numberFlag(ctx, "min-requests", "50", true)!,
      maxErrorRateDelta: rateFlag(ctx, "max-error-rate-delta", "1%")!,
      maxP99Ratio: numberFlag(ctx, "max-p99-ratio", "1.5", false),
      p99FloorMs: numberFlag(ctx, "p99-floor-ms", "25", false)!,
      maxErrorRate: rateFlag(ctx, "max-error-rate"),
      maxP99Ms: numberFlag(ctx, "max-p99-ms", undefined, false),
      failureLimit: numberFlag(ctx, "failure-limit", "1", true)!,
      routers: routersOf(ctx),
    };
    const leaseMs = durationFlag(ctx, "lease", "15s");
    return () => walk(ctx, plan, leaseMs);
  },
};

async function walk(ctx: Context, base: Omit<ReleasePlan, "fromWeight">, leaseMs: number): Promise<Output> {
  // Signals first: from here on, Ctrl-C rolls back instead of leaving the weight where it is.
  let signal: NodeJS.Signals | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (s: NodeJS.Signals) => {
    signal ??= s;
    wake?.();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const store = new AdminStore(ctx.memcached);
  try {
    const doc = await readRules(ctx);
    const def = doc?.canaries[base.canary];
    const fromWeight = def === undefined ? 0 : weightOf(def);
    const plan: ReleasePlan = { ...base, fromWeight };
    if (stepsFrom(plan.allSteps, fromWeight).steps.length === 0)
      throw new UsageError(
        `${plan.canary} is at weight ${fromWeight} %, above every step (${plan.allSteps.join(",")}): a release never lowers it`,
      );
    // No router at all: nothing is written, exit 1.
    const first = await readFleet(plan.routers);
    if (first.statuses.size === 0)
      throw new RouterError(`no router answered: ${first.missing.map((m) => m.error).join("; ")}`);
    const id = newReleaseId();
    const state: ReleaseState = {
      format: 1,
      id,
      ...ownerHere(),
      canary: plan.canary,
      steps: plan.allSteps,
      from_weight: fromWeight,
      step: 0,
      weight: fromWeight,
      state: "running",
      control: "run",
      started_at: Date.now(),
      interval_ms: plan.intervalMs,
      lease_until: Date.now() + leaseMs,
      routers: plan.routers,
      samples: null,
      verdicts: [],
    };
    if (!(await takeRelease(store, ctx.prefix, state))) {
      const other = (await readRelease(store, ctx.prefix))?.state;
      return {
        text: `another release holds ${releaseKey(ctx.prefix)}: ${other === undefined ? "(gone just now: try again)" : describeRelease(other)}`,
        data: { refused: true, running: other ?? null },
        code: REFUSED,
      };
    }
    const live = process.stdout.isTTY === true && !ctx.json;
    let open = false;
    const print = (e: ReleaseEvent) => {
      if (ctx.json) {
        // The last event ("done") is printed by gray.ts as the command's result.
        if (e.event !== "done") process.stdout.write(JSON.stringify(e) + "\n");
        return;
      }
      if (e.event === "done") return;
      const line = describe(e);
      if (line === undefined) return;
      if (e.event === "check") {
        if (live) {
          process.stdout.write(`\r\x1b[K${line}`);
          open = true;
        }
        return;
      }
      process.stdout.write(`${open ? "\r\x1b[K" : ""}${line}\n`);
      open = false;
    };
    let storeWarned = false;
    let done;
    try {
      done = await runRelease(
        plan,
        {
          setWeight: async (weight) => {
            await runEdit(ctx, `release: weight ${weight} --canary ${plan.canary}`, (d) => {
              const set = setWeight(d, plan.canary, weight);
              return { changed: set.was !== set.now, result: undefined };
            });
          },
          readFleet: () => readFleet(plan.routers),
          sync: async (change) => {
            try {
              let asked: { control: Control; by?: string } = { control: "run" };
              const now = await updateRelease(store, ctx.prefix, id, (s) => {
                change(s);
                s.lease_until = Date.now() + leaseMs;
                asked = { control: s.control, by: s.control_by };
                return s;
              });
              return now === undefined ? "gone" : asked;
            } catch (err) {
              if (!(err instanceof StoreError)) throw err;
              if (!storeWarned) process.stderr.write(`gray release: warning: ${err.message} (the release goes on)\n`);
              storeWarned = true;
              return { control: "run" };
            }
          },
          interrupted: () => signal,
          sleep: (ms) =>
            new Promise<void>((resolve) => {
              if (signal !== undefined) return resolve();
              const timer = setTimeout(resolve, ms);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            }),
        },
        print,
      );
    } catch (err) {
      // Something failed mid-release (the store, a bug): the weight goes back to 0 if it can, the key is freed.
      if (open) process.stdout.write("\n");
      const zeroed = await runEdit(ctx, `release failed: weight 0 --canary ${plan.canary}`, (d) => {
        const set = d.canaries[plan.canary] === undefined ? undefined : setWeight(d, plan.canary, 0);
        return { changed: set !== undefined && set.was !== set.now, result: undefined };
      }).then(
        () => true,
        () => false,
      );
      process.stderr.write(
        zeroed
          ? `gray release: ${plan.canary}'s weight set back to 0\n`
          : `gray release: ${plan.canary}'s weight could NOT be set back to 0: the release stays in ${releaseKey(ctx.prefix)} (stale once its lease is over) until gray release abort\n`,
      );
      if (zeroed) await endRelease(store, ctx.prefix, id).catch(() => undefined);
      throw err;
    }
    if (open) process.stdout.write("\n");
    await endRelease(store, ctx.prefix, id).catch(() => undefined);
    const text = describe(done)!;
    return { text, data: done, code: done.exit, stdout: done.exit === 0 };
  } finally {
    store.close();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
