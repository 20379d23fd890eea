/**
 * `gray release`: a canary's weight raised step by step, each step judged on the routers'
 * counters as Flagger and Argo Rollouts judge theirs, on a plain nginx fleet:
 *
 * - evidence first: a step needs `minRequests` canary requests in its window; with fewer it is
 *   inconclusive and waits (up to `maxWaitMs` past its interval), then rolls back — never a pass on
 *   no evidence. A router that does not answer is missing evidence too;
 * - against stable in the same window: the canary's 5xx rate may exceed stable's by at most
 *   `maxErrorRateDelta`, its p99 (from the latency histograms' deltas) be at most `maxP99Ratio` ×
 *   stable's (p99s under `p99FloorMs` count as that floor); where stable has too few requests in the window (the canary holds nearly everyone),
 *   stable's last window with enough is the baseline (the release reads one before its first step);
 * - absolute gates only when given (`maxErrorRate`, `maxP99Ms`);
 * - both versions over a gate together is an incident, not the canary's fault: inconclusive (hold);
 * - `failureLimit` failed checks roll back; each failed check starts a fresh window.
 *
 * Rolling back sets the weight to 0. The judging is pure (judge()); run() does the walking with
 * what it is given (the weight writer, the routers, the shared release state, the clock).
 */
import { parseWeight } from "../../lua-src/gray/rules.ts";
import type { RouteCounts } from "../../lua-src/gray/status.ts";
import { type Context, UsageError, stringFlag } from "./command.ts";
import { type FleetReading, combineRoutes, emptyRoute } from "./fleet.ts";
import { quantile } from "./latency.ts";
import type { Control, ReleaseState, Sample } from "./release-state.ts";

export interface ReleasePlan {
  canary: string;
  /** Every step asked for, in percent, increasing. */
  allSteps: number[];
  /** The canary's weight when the release began: steps below it are skipped, never lowered to. */
  fromWeight: number;
  intervalMs: number;
  /** How long a step may stay inconclusive past its interval before it rolls back. */
  maxWaitMs: number;
  minRequests: number;
  /** Fractions (0.01 for 1 point). */
  maxErrorRateDelta: number;
  /** undefined: off. */
  maxP99Ratio: number | undefined;
  /**
   * p99s under this (ms) count as this in the ratio: below it, differences are a busy machine's
   * scheduling and the first buckets' widths (5, 10, 25 ms), not the canary.
   */
  p99FloorMs: number;
  maxErrorRate: number | undefined;
  maxP99Ms: number | undefined;
  failureLimit: number;
  routers: string[];
  /** How often the routers are read (default 1 s, or the interval when shorter). */
  pollMs?: number;
}

/** The steps a release walks (those at or above its starting weight) and those it skips. */
export function stepsFrom(allSteps: number[], fromWeight: number): { steps: number[]; skipped: number[] } {
  return { steps: allSteps.filter((w) => w >= fromWeight), skipped: allSteps.filter((w) => w < fromWeight) };
}

export type RollbackKind = "errors" | "latency" | "inconclusive" | "aborted" | "interrupted";

export interface Reason {
  kind: "errors" | "latency" | "evidence" | "incident";
  text: string;
}

export interface Judgement {
  verdict: "pass" | "fail" | "inconclusive";
  reasons: Reason[];
}

export interface Window {
  canary: RouteCounts;
  stable: RouteCounts;
  /** Routers whose figures are not in the window (no answer at one end, or counters reset), with why. */
  missing: string[];
}

export function sample(r: RouteCounts): Sample {
  const p99 = quantile(r.latency, 0.99);
  return {
    requests: r.requests,
    errors: r.responses_5xx,
    error_rate: r.requests > 0 ? r.responses_5xx / r.requests : 0,
    p99_ms: p99 === undefined ? null : Math.round(p99 * 10000) / 10,
  };
}

/** The fleet's counters between two readings, summed over the routers that answered both and did not restart. */
export function windowOf(from: FleetReading, to: FleetReading, canary: string, routers: string[]): Window {
  let c = emptyRoute();
  let s = emptyRoute();
  const missing: string[] = [];
  for (const url of routers) {
    const a = from.statuses.get(url);
    const b = to.statuses.get(url);
    if (a === undefined || b === undefined) {
      const why = [...from.missing, ...to.missing].find((m) => m.url === url)?.error ?? "no answer";
      missing.push(`${url} (${why})`);
      continue;
    }
    const dc = combineRoutes(b.routes[canary] ?? emptyRoute(), a.routes[canary] ?? emptyRoute(), -1);
    const ds = combineRoutes(b.routes.stable ?? emptyRoute(), a.routes.stable ?? emptyRoute(), -1);
    if (dc.requests < 0 || ds.requests < 0) {
      missing.push(`${url} (its counters went back: restarted?)`);
      continue;
    }
    c = combineRoutes(c, dc, 1);
    s = combineRoutes(s, ds, 1);
  }
  return { canary: c, stable: s, missing };
}

const pct = (rate: number) => `${(100 * rate).toFixed(2)} %`;
const ms = (seconds: number) => `${(1000 * seconds).toFixed(1)} ms`;

/**
 * One check of a window. `stable` is the stable figures to compare with: this window's, or the
 * baseline when this window has too few (undefined when there is neither).
 */
export function judge(plan: ReleasePlan, w: Window, stable: RouteCounts | undefined): Judgement {
  const fails: Reason[] = [];
  const unsure: Reason[] = [];
  const c = w.canary;
  if (c.requests < plan.minRequests) {
    unsure.push({ kind: "evidence", text: `${c.requests} of ${plan.minRequests} canary requests` });
  } else {
    const rate = c.responses_5xx / c.requests;
    const stableRate =
      stable === undefined || stable.requests === 0 ? undefined : stable.responses_5xx / stable.requests;
    if (stableRate === undefined)
      unsure.push({
        kind: "evidence",
        text: `${w.stable.requests} stable requests and no earlier stable window to compare with`,
      });
    // Errors: worse than stable by more than the delta is the canary's; both over the bar is an incident.
    const bar = plan.maxErrorRate ?? plan.maxErrorRateDelta;
    if (stableRate !== undefined && rate - stableRate > plan.maxErrorRateDelta + 1e-12)
      fails.push({
        kind: "errors",
        text: `canary 5xx ${pct(rate)} is over stable's ${pct(stableRate)} + ${pct(plan.maxErrorRateDelta)}`,
      });
    else if (rate > bar && stableRate !== undefined && stableRate > bar)
      unsure.push({
        kind: "incident",
        text: `both versions failing: canary 5xx ${pct(rate)}, stable ${pct(stableRate)} (over ${pct(bar)})`,
      });
    else if (plan.maxErrorRate !== undefined && rate > plan.maxErrorRate)
      fails.push({ kind: "errors", text: `canary 5xx ${pct(rate)} is over ${pct(plan.maxErrorRate)}` });
    // Latency; not during an incident: failing answers' times (timeouts, refused connects) say nothing of the canary.
    const incident = unsure.some((r) => r.kind === "incident");
    if (!incident && (plan.maxP99Ratio !== undefined || plan.maxP99Ms !== undefined)) {
      const p99 = quantile(c.latency, 0.99);
      const stableP99 = stable === undefined ? undefined : quantile(stable.latency, 0.99);
      if (p99 === undefined)
        unsure.push({ kind: "evidence", text: "no latency histogram from the routers (older than 0.3?)" });
      else {
        const limitMs = plan.maxP99Ms;
        const floor = plan.p99FloorMs / 1000;
        if (
          plan.maxP99Ratio !== undefined &&
          stableP99 !== undefined &&
          p99 > plan.maxP99Ratio * Math.max(stableP99, floor)
        )
          fails.push({
            kind: "latency",
            text: `canary p99 ${ms(p99)} is over ${plan.maxP99Ratio} × stable's ${ms(stableP99)}${stableP99 < floor ? ` (taken as ${plan.p99FloorMs} ms, the floor)` : ""}`,
          });
        else if (limitMs !== undefined && p99 * 1000 > limitMs) {
          if (stableP99 !== undefined && stableP99 * 1000 > limitMs)
            unsure.push({
              kind: "incident",
              text: `both versions slow: canary p99 ${ms(p99)}, stable ${ms(stableP99)} (over ${limitMs} ms)`,
            });
          else fails.push({ kind: "latency", text: `canary p99 ${ms(p99)} is over ${limitMs} ms` });
        }
      }
    }
  }
  if (fails.length > 0) return { verdict: "fail", reasons: fails };
  // Missing routers can only take evidence away: what they hide could be a failure.
  for (const m of w.missing) unsure.push({ kind: "evidence", text: `no figures from ${m}` });
  if (unsure.length > 0) return { verdict: "inconclusive", reasons: unsure };
  return { verdict: "pass", reasons: [] };
}

interface Position {
  step: number;
  of: number;
  weight: number;
}
type Figures = { canary: Sample; stable: Sample; stable_from: "window" | "baseline" | "none" };

export type ReleaseEvent =
  | { event: "start"; canary: string; from_weight: number; steps: number[]; skipped: number[]; routers: string[] }
  | { event: "baseline"; elapsed_ms: number; stable: Sample; missing: string[] }
  | ({ event: "step" } & Position)
  | ({ event: "check"; elapsed_ms: number; interval_ms: number; missing: string[] } & Position & Figures)
  | ({
      event: "verdict";
      verdict: Judgement["verdict"];
      reasons: string[];
      failures: number;
      elapsed_ms: number;
    } & Position &
      Figures)
  | ({ event: "paused" | "resumed"; by: string | undefined } & Position)
  | ({ event: "rollback"; kind: RollbackKind; reason: string } & Position)
  | Done;

export type Done =
  | { event: "done"; outcome: "released"; canary: string; weight: number; exit: 0; reason: string }
  | ({
      event: "done";
      outcome: "rolled_back";
      canary: string;
      kind: RollbackKind;
      reason: string;
      exit: number;
    } & Position);

export interface ReleaseIO {
  setWeight(weight: number): Promise<void>;
  readFleet(): Promise<FleetReading>;
  /** Publishes the state (renewing the lease) and returns what was asked of the release meanwhile. */
  sync(change: (s: ReleaseState) => void): Promise<{ control: Control; by?: string } | "gone">;
  /** A signal received (SIGINT, SIGTERM), if any. */
  interrupted(): NodeJS.Signals | undefined;
  /** Sleeps, waking early on a signal. */
  sleep(ms: number): Promise<void>;
}

export const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 130, SIGTERM: 143 };
export const ROLLED_BACK_EXIT = 3;

function kindOf(reasons: Reason[]): RollbackKind {
  return reasons.some((r) => r.kind === "errors")
    ? "errors"
    : reasons.some((r) => r.kind === "latency")
      ? "latency"
      : "inconclusive";
}

/** Walks the steps; every way out but "released" has set the weight to 0 first. */
export async function runRelease(plan: ReleasePlan, io: ReleaseIO, emit: (e: ReleaseEvent) => void): Promise<Done> {
  const { steps, skipped } = stepsFrom(plan.allSteps, plan.fromWeight);
  const of = plan.allSteps.length;
  const pollMs = plan.pollMs ?? Math.min(1000, plan.intervalMs);
  emit({
    event: "start",
    canary: plan.canary,
    from_weight: plan.fromWeight,
    steps,
    skipped,
    routers: plan.routers,
  });
  let baseline: RouteCounts | undefined;
  let position: Position = { step: 0, of, weight: plan.fromWeight };

  const rollBack = async (kind: RollbackKind, reason: string): Promise<Done> => {
    emit({ event: "rollback", kind, reason, ...position });
    await io
      .sync((s) => {
        s.state = "rolling_back";
      })
      .catch(() => undefined);
    await io.setWeight(0);
    const signal = io.interrupted();
    const exit =
      kind === "interrupted" && signal !== undefined ? (SIGNAL_EXIT[signal] ?? ROLLED_BACK_EXIT) : ROLLED_BACK_EXIT;
    const done: Done = { event: "done", outcome: "rolled_back", canary: plan.canary, kind, reason, exit, ...position };
    emit(done);
    return done;
  };

  // Stable's figures before any change, for the steps where stable gets too few requests to judge by
  // (the canary near 100 %): read until stable has minRequests, at most an interval.
  {
    const first = await io.readFleet();
    let w: Window | undefined;
    let elapsed = 0;
    while (elapsed < plan.intervalMs) {
      await io.sleep(pollMs);
      if (io.interrupted() !== undefined) break;
      const now = await io.readFleet();
      elapsed = now.at - first.at;
      w = windowOf(first, now, plan.canary, plan.routers);
      if (w.stable.requests >= plan.minRequests) {
        baseline = w.stable;
        break;
      }
    }
    if (w !== undefined) emit({ event: "baseline", elapsed_ms: elapsed, stable: sample(w.stable), missing: w.missing });
  }

  for (const weight of steps) {
    position = { step: plan.allSteps.indexOf(weight) + 1, of, weight };
    await io.setWeight(weight);
    emit({ event: "step", ...position });
    let failures = 0;
    let start = await io.readFleet();
    // Said at once, not at the first poll: whoever watches sees the new step with its weight.
    await io.sync((s) => {
      s.step = position.step;
      s.weight = weight;
      s.step_started_at = start.at;
    });
    let readings = [start];
    let paused = false;
    let lastUnsure = "";
    for (;;) {
      await io.sleep(pollMs);
      const signal = io.interrupted();
      if (signal !== undefined) return rollBack("interrupted", `interrupted by ${signal}`);
      const now = await io.readFleet();
      const asked = await io.sync((s) => {
        s.step = position.step;
        s.weight = weight;
        s.step_started_at = start.at;
        s.state = paused ? "paused" : s.state === "paused" ? "running" : s.state;
      });
      if (asked === "gone")
        return rollBack("aborted", "the release's state is gone from memcached (cleared, or the store flushed)");
      if (asked.control === "abort") return rollBack("aborted", `aborted by ${asked.by ?? "another shell"}`);
      if (asked.control === "pause") {
        if (!paused) {
          paused = true;
          emit({ event: "paused", by: asked.by, ...position });
          await io.sync((s) => {
            s.state = "paused";
          });
        }
        continue;
      }
      if (paused) {
        paused = false;
        emit({ event: "resumed", by: asked.by, ...position });
        await io.sync((s) => {
          s.state = "running";
        });
        start = now;
        readings = [now];
        continue;
      }
      readings.push(now);
      const elapsed = now.at - start.at;
      // Past the interval: the latest window at least an interval long that holds enough canary requests.
      let from = start;
      if (elapsed >= plan.intervalMs) {
        for (let i = readings.length - 2; i >= 0; i--) {
          const r = readings[i]!;
          if (now.at - r.at < plan.intervalMs) continue;
          if (windowOf(r, now, plan.canary, plan.routers).canary.requests >= plan.minRequests) {
            from = r;
            break;
          }
        }
      }
      const w = windowOf(from, now, plan.canary, plan.routers);
      const ownStable = w.stable.requests >= plan.minRequests;
      if (ownStable) baseline = w.stable;
      const stable = ownStable ? w.stable : (baseline ?? (w.stable.requests > 0 ? w.stable : undefined));
      const figures: Figures = {
        canary: sample(w.canary),
        stable: sample(stable ?? w.stable),
        stable_from: ownStable ? "window" : baseline !== undefined ? "baseline" : "none",
      };
      const j = judge(plan, w, ownStable || baseline !== undefined ? stable : undefined);
      emit({
        event: "check",
        elapsed_ms: elapsed,
        interval_ms: plan.intervalMs,
        missing: w.missing,
        ...position,
        ...figures,
      });
      const verdict = (v: Judgement) => {
        const reasons = v.reasons.map((r) => r.text);
        emit({ event: "verdict", verdict: v.verdict, reasons, failures, elapsed_ms: elapsed, ...position, ...figures });
        return io.sync((s) => {
          s.samples = { canary: figures.canary, stable: figures.stable };
          s.verdicts.push({ step: position.step, weight, verdict: v.verdict, reasons, at: Date.now() });
          s.state = v.verdict === "inconclusive" ? "waiting" : "running";
        });
      };
      if (j.verdict === "fail") {
        failures++;
        await verdict(j);
        if (failures >= plan.failureLimit) return rollBack(kindOf(j.reasons), j.reasons.map((r) => r.text).join("; "));
        start = now;
        readings = [now];
        continue;
      }
      if (elapsed < plan.intervalMs) continue;
      if (j.verdict === "pass") {
        await verdict(j);
        break;
      }
      const text = j.reasons.map((r) => r.text).join("; ");
      if (elapsed >= plan.intervalMs + plan.maxWaitMs) {
        await verdict(j);
        return rollBack("inconclusive", `inconclusive for ${Math.round(elapsed / 1000)} s: ${text}`);
      }
      // Said once, and again when the reason changes kind.
      const key = j.reasons.map((r) => r.kind).join(",");
      if (key !== lastUnsure) {
        lastUnsure = key;
        await verdict(j);
      }
    }
  }
  const done: Done = {
    event: "done",
    outcome: "released",
    canary: plan.canary,
    weight: steps.at(-1) ?? plan.fromWeight,
    exit: 0,
    reason: `released: ${plan.canary} at weight ${steps.at(-1) ?? plan.fromWeight} %`,
  };
  emit(done);
  return done;
}

/** Percent or fraction, "1%" / "0.5" → 0.01 / 0.005 ... : the number is percent either way. */
export function parseRate(raw: string): number | undefined {
  const percent = parseWeight(raw.trim().replace(/\s*%$/, ""));
  return percent === undefined ? undefined : percent / 100;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "30s", "500ms", "2m", "1.5s"; a bare number is seconds. */
export function parseDuration(raw: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * UNITS[m[2] ?? "s"]!;
  return ms > 0 ? Math.round(ms) : undefined;
}

/** A duration flag (--interval, --max-wait, --lease, status --watch's --interval) in ms, or a UsageError naming it. */
export function durationFlag(ctx: Context, name: string, fallback: string): number {
  const ms = parseDuration(stringFlag(ctx, name, fallback));
  if (ms === undefined)
    throw new UsageError(
      `--${name} takes a duration such as 30s, 500ms or 2m: ${JSON.stringify(stringFlag(ctx, name))}`,
    );
  return ms;
}

/** "1,10,50,100": weights from 0 to 100, each above the one before. */
export function parseSteps(raw: string): number[] | undefined {
  const steps = raw.split(",").map((s) => parseWeight(s.trim()));
  if (steps.length === 0 || steps.some((s) => s === undefined)) return undefined;
  const weights = steps as number[];
  return weights.every((w, i) => i === 0 || w > weights[i - 1]!) ? weights : undefined;
}

const seconds = (msValue: number) => `${(msValue / 1000).toFixed(msValue < 10_000 ? 1 : 0)} s`;
const p99Text = (s: Sample) => (s.p99_ms === null ? "-" : `${s.p99_ms} ms`);
const figuresText = (f: Figures) =>
  `canary 5xx ${pct(f.canary.error_rate)} (${f.canary.errors} of ${f.canary.requests}) p99 ${p99Text(f.canary)}  ` +
  `stable 5xx ${pct(f.stable.error_rate)} (${f.stable.errors} of ${f.stable.requests}) p99 ${p99Text(f.stable)}${f.stable_from === "baseline" ? " (earlier window)" : ""}`;

/** One line per event, for people; undefined for events that print nothing on their own. */
export function describe(e: ReleaseEvent): string | undefined {
  switch (e.event) {
    case "start":
      return e.skipped.length > 0
        ? `${e.canary} is at weight ${e.from_weight} %: steps ${e.skipped.join(", ")} skipped (a release never lowers the weight)`
        : undefined;
    case "step":
    case "baseline":
      return undefined;
    case "check": {
      const shown = Math.min(e.elapsed_ms, e.interval_ms);
      const bar = "#".repeat(Math.round((20 * shown) / e.interval_ms)).padEnd(20, ".");
      return `step ${e.step}/${e.of}  weight ${e.weight} %  [${bar}] ${seconds(e.elapsed_ms)}/${seconds(e.interval_ms)}  ${figuresText(e)}`;
    }
    case "verdict": {
      const head = `step ${e.step}/${e.of}  weight ${e.weight} %  after ${seconds(e.elapsed_ms)}: `;
      if (e.verdict === "pass") return `${head}passed  ${figuresText(e)}`;
      if (e.verdict === "fail") return `${head}FAILED (${e.failures}): ${e.reasons.join("; ")}`;
      return `${head}inconclusive, holding: ${e.reasons.join("; ")}`;
    }
    case "paused":
      return `step ${e.step}/${e.of}  weight ${e.weight} %: paused by ${e.by ?? "another shell"} (gray release resume)`;
    case "resumed":
      return `step ${e.step}/${e.of}  weight ${e.weight} %: resumed by ${e.by ?? "another shell"}, the step's window starts again`;
    case "rollback":
      return undefined;
    case "done":
      return e.outcome === "released"
        ? e.reason
        : `rolled back to weight 0 at step ${e.step}/${e.of} (weight ${e.weight} %), ${e.kind}: ${e.reason}`;
  }
}
