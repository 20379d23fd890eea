/**
 * `gray release`: seed 000's gradual weight raise as a guarded rollout (what Flagger and Argo
 * Rollouts do on Kubernetes). Each step sets the canary's weight (a revision of the rules
 * document, written by the caller's `setWeight`), then watches the canary's
 * and stable's 5xx rates in the router's /gray/status over the interval; a canary rate above the
 * limit sets the weight back to 0 at once and ends the release.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { parseWeight } from "../../lua-src/gray/rules.ts";
import type { Status } from "../../lua-src/gray/status.ts";
import { fetchStatus } from "./status.ts";

export interface ReleasePlan {
  /** Weights in percent, increasing. */
  steps: number[];
  intervalMs: number;
  /** The highest canary 5xx rate tolerated, as a fraction (0.01 for 1 %). */
  maxErrorRate: number;
  statusUrl: string;
}

/** Sets the canary's weight in percent; resolves once the store acknowledged it. */
export type SetWeight = (weight: number) => Promise<void>;

/** Requests and 5xx answers of one route over a step so far. */
export interface RouteWindow {
  requests: number;
  errors: number;
  /** errors / requests, 0 without requests. */
  rate: number;
}

export interface StepReport {
  /** 1-based. */
  step: number;
  of: number;
  weight: number;
  /** ms since the step's weight was set. */
  elapsedMs: number;
  intervalMs: number;
  canary: RouteWindow;
  stable: RouteWindow;
}

/** While a step runs ("progress"), when it has held for its interval ("step"), and how the release ended. */
export type StepEvent = { event: "progress" | "step" } & StepReport;
export type Outcome =
  ({ event: "rolled_back"; maxErrorRate: number } & StepReport) | { event: "released"; weight: number };
export type ReleaseEvent = StepEvent | Outcome;

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

/** "1,10,50,100": weights from 0 to 100, each above the one before. */
export function parseSteps(raw: string): number[] | undefined {
  const steps = raw.split(",").map((s) => parseWeight(s.trim()));
  if (steps.length === 0 || steps.some((s) => s === undefined)) return undefined;
  const weights = steps as number[];
  return weights.every((w, i) => i === 0 || w > weights[i - 1]!) ? weights : undefined;
}

function windowOf(route: string, from: Status, to: Status): RouteWindow {
  const before = from.routes[route] ?? { requests: 0, responses_5xx: 0 };
  const after = to.routes[route] ?? { requests: 0, responses_5xx: 0 };
  const requests = after.requests - before.requests;
  const errors = after.responses_5xx - before.responses_5xx;
  return { requests, errors, rate: requests > 0 ? errors / requests : 0 };
}

/** How often the status is read within an interval: the router's counters are at most a second behind. */
const POLL_MS = 1000;

/**
 * Walks the weight up, reporting each step as it goes; ends "released", or "rolled_back" with the
 * figures that tripped it (the weight is then 0). A status that cannot be read once the weight has
 * been raised also sets it back to 0 before the error is thrown: a release nobody watches stops.
 */
export async function release(
  setWeight: SetWeight,
  plan: ReleasePlan,
  report: (e: StepEvent) => void,
): Promise<Outcome> {
  const rollBack = () => setWeight(0);
  let before = await fetchStatus(plan.statusUrl);
  for (const [i, weight] of plan.steps.entries()) {
    await setWeight(weight);
    const started = Date.now();
    for (;;) {
      const elapsedMs = Date.now() - started;
      await sleep(Math.max(0, Math.min(POLL_MS, plan.intervalMs - elapsedMs)));
      let now: Status;
      try {
        now = await fetchStatus(plan.statusUrl);
      } catch (err) {
        await rollBack();
        throw err;
      }
      const r: StepReport = {
        step: i + 1,
        of: plan.steps.length,
        weight,
        elapsedMs: Date.now() - started,
        intervalMs: plan.intervalMs,
        canary: windowOf("canary", before, now),
        stable: windowOf("stable", before, now),
      };
      if (r.canary.rate > plan.maxErrorRate) {
        await rollBack();
        return { event: "rolled_back", maxErrorRate: plan.maxErrorRate, ...r };
      }
      const done = r.elapsedMs >= plan.intervalMs;
      report({ event: done ? "step" : "progress", ...r });
      if (done) {
        before = now;
        break;
      }
    }
  }
  return { event: "released", weight: plan.steps.at(-1)! };
}

const pct = (rate: number) => `${(100 * rate).toFixed(2)} %`;
const figures = (name: string, w: RouteWindow) => `${name} 5xx ${pct(w.rate)} (${w.errors} of ${w.requests})`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;

/** One line per event, for people: a step's progress, its end, the outcome. */
export function describe(e: ReleaseEvent): string {
  switch (e.event) {
    case "released":
      return `released: weight ${e.weight} %`;
    case "rolled_back":
      return `rolled back to weight 0 at step ${e.step}/${e.of} (weight ${e.weight} %, after ${seconds(e.elapsedMs)}): ${figures("canary", e.canary)} is over ${pct(e.maxErrorRate)}; ${figures("stable", e.stable)}`;
    default: {
      const shown = Math.min(e.elapsedMs, e.intervalMs);
      const bar = "#".repeat(Math.round((20 * shown) / e.intervalMs)).padEnd(20, ".");
      return `step ${e.step}/${e.of}  weight ${e.weight} %  [${bar}] ${seconds(shown)}/${seconds(e.intervalMs)}  ${figures("canary", e.canary)}  ${figures("stable", e.stable)}`;
    }
  }
}
