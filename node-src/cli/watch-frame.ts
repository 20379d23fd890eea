/**
 * One frame of `gray status --watch`: a pure function of the reading before, the reading now and
 * the release read from memcached (the time shown and the interval's length are the readings'
 * own). Plain text, no escape codes: the loop (watch.ts) places it on a terminal.
 */
import type { Status } from "../../lua-src/gray/status.ts";
import type { FleetReading } from "./fleet.ts";
import { type ReleaseState, type Sample, describeRelease } from "./release-state.ts";
import { percent, routerLine, routerSummary, table } from "./status.ts";
import { type Interval, type RouteRate, type RouterInterval, intervalOf } from "./watch-rates.ts";

/** The release as `gray status` reads it: none running, one, or the store did not say. */
export type ReleaseView = { state: ReleaseState } | { none: true } | { error: string };

export interface FrameInput {
  urls: string[];
  /** The interval asked for (--interval), in ms. */
  intervalMs: number;
  before: FleetReading | undefined;
  now: FleetReading;
  release: ReleaseView;
}

const ms = (seconds: number | undefined) => (seconds === undefined ? "-" : `${(1000 * seconds).toFixed(1)} ms`);
const rate = (r: number | undefined) => (r === undefined ? "-" : `${(100 * r).toFixed(2)} %`);
const secondsText = (msValue: number) => `${(msValue / 1000).toFixed(2)} s`;
const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** The routes: weight, and over the interval requests/s, requests, 5xx, 5xx rate, p50, p99. */
function routeTable(now: Status, rates: Record<string, RouteRate>): string[] {
  const canaryWeights = now.route_names.reduce((sum, r) => sum + (now.canaries[r]?.weight ?? 0), 0);
  const rows = [["route", "weight", "req/s", "requests", "5xx", "5xx rate", "p50", "p99"]];
  for (const name of now.route_names) {
    const weight = now.canaries[name]?.weight ?? (name === "stable" ? Math.max(0, 100 - canaryWeights) : undefined);
    const r = rates[name];
    rows.push([
      name,
      weight === undefined ? "-" : `${Number(weight.toFixed(3))} %`,
      r?.perSecond === undefined ? "-" : r.perSecond.toFixed(1),
      r === undefined ? "-" : `${r.requests}`,
      r === undefined ? "-" : `${r.errors}`,
      rate(r?.errorRate),
      ms(r?.p50),
      ms(r?.p99),
    ]);
  }
  return table(rows);
}

/** The rules document the (first answering) router holds, and whether it is in trouble. */
function documentLine(s: Status, at: number): string {
  const d = s.document;
  // The router writes null for what it does not know (the Status type says undefined).
  if (d.revision == null)
    return `rules    no revision loaded${d.last_error != null ? `: PROBLEM: ${d.last_error}` : ""}`;
  const health: string[] = [];
  if (d.last_error != null) health.push(`PROBLEM: ${d.last_error}`);
  if (d.missing_since != null)
    health.push(
      `missing from memcached for ${Math.max(0, Math.round(at / 1000 - d.missing_since))} s (being written back)`,
    );
  const e = d.entries;
  return (
    `rules    revision ${d.revision} (age ${d.age_s ?? "?"} s, from ${d.source ?? "?"}), ` +
    `${plural(e.ips, "ip")}, ${plural(e.ranges, "range")}, ${plural(e.users, "user")}: ${health.length ? health.join("; ") : "ok"}`
  );
}

/** memcached, and the lookups and errors of the interval. */
function storeLine(s: Status, counts: Status | undefined): string {
  const head = `store    memcached ${s.memcached}, cache ${s.cache_dict === false ? "off" : s.cache_dict}`;
  if (counts === undefined) return head;
  const c = counts.store;
  const lookups = c.hits + c.misses + c.fallbacks;
  const e = counts.store_errors;
  return `${head}; this interval: ${plural(lookups, "lookup")} (${percent(c.fallbacks, lookups)} fallbacks), errors: lookup ${e.lookup}, refresh ${e.refresh}`;
}

const sampleText = (x: Sample) =>
  `5xx ${rate(x.error_rate)} (${x.errors} of ${x.requests}) p99 ${x.p99_ms === null ? "-" : `${x.p99_ms} ms`}`;

const clock = (unixMs: number) => new Date(unixMs).toISOString().slice(11, 19);

/** Verdicts shown: the newest, one a line. */
const SHOWN_VERDICTS = 6;

/** When the current step is judged: its window's start plus the interval (older releases do not say). */
function nextCheck(s: ReleaseState, at: number): string | undefined {
  if (s.interval_ms === undefined || s.step_started_at === undefined || s.step === 0) return undefined;
  if (s.state === "paused") return "paused: the step's window starts again on resume";
  const left = s.step_started_at + s.interval_ms - at;
  return left > 0
    ? `step ${s.step} judged in ${Math.ceil(left / 1000)} s (window ${Math.round(s.interval_ms / 1000)} s)`
    : `step ${s.step} judged as soon as its window holds enough requests`;
}

/** The release: where it is, what it does and was asked, its last figures, each check's verdict so far. */
export function releaseLines(view: ReleaseView, at: number): string[] {
  if ("none" in view) return ["release  none running"];
  if ("error" in view) return [`release  unknown (${view.error})`];
  const s = view.state;
  const lines = [`release  ${describeRelease(s, at).replace(/^release of /, "")}`];
  if (!Array.isArray(s.verdicts)) return lines;
  lines.push(
    `  steps ${s.steps.join(",")} %, now ${s.step === 0 ? "before the first" : `${s.step}/${s.steps.length} at weight ${s.weight} %`}; ` +
      `state ${s.state}, control ${s.control}${s.control_by ? ` (by ${s.control_by})` : ""}`,
  );
  const next = nextCheck(s, at);
  if (next !== undefined) lines.push(`  next     ${next}`);
  if (s.samples)
    lines.push(`  samples  canary ${sampleText(s.samples.canary)}; stable ${sampleText(s.samples.stable)}`);
  const shown = s.verdicts.slice(-SHOWN_VERDICTS);
  if (s.verdicts.length > shown.length) lines.push(`  checks   (${s.verdicts.length - shown.length} earlier)`);
  for (const [i, v] of shown.entries())
    lines.push(
      `  ${i === 0 ? "checks " : "       "}  ${clock(v.at)} step ${v.step} (${v.weight} %) ${v.verdict}` +
        (v.reasons.length ? `: ${v.reasons.join("; ")}` : ""),
    );
  if (shown.length === 0) lines.push("  checks   none yet");
  return lines;
}

/** A router: NO ANSWER and why, or answered, what it holds, and its part of the interval. */
function routerText(r: RouterInterval, interval: Interval): string {
  if (r.status === undefined) return routerLine(r.url, undefined, r.error);
  const head = `  ${r.url}  answered: ${routerSummary(r.status)}`;
  if (interval.elapsedMs === undefined) return head;
  if (r.delta === undefined) return `${head}; no reading before: in the figures from the next interval`;
  const requests = r.delta.route_names.reduce((n, name) => n + (r.delta!.routes[name]?.requests ?? 0), 0);
  const perSecond = interval.elapsedMs ? ((1000 * requests) / interval.elapsedMs).toFixed(1) : "-";
  return `${head}; ${perSecond} req/s${r.state === "reset" ? " (counters RESET: counted from the reset)" : ""}`;
}

export function renderFrame(input: FrameInput): string {
  const interval = intervalOf(input.before, input.now, input.urls);
  const at = input.now.at;
  const answered = interval.routers.filter((r) => r.state !== "missing").length;
  const over =
    interval.elapsedMs === undefined
      ? "first reading: rates from the next one"
      : `over the last ${secondsText(interval.elapsedMs)}`;
  const lines = [`--- ${new Date(at).toISOString()}  every ${secondsText(input.intervalMs)}, ${over} ---`, ""];
  const now = interval.now;
  if (now === undefined) lines.push("no router answered");
  else {
    lines.push(...routeTable(now, interval.rates));
    const resets = interval.routers.filter((r) => r.state === "reset").map((r) => r.url);
    if (resets.length)
      lines.push(`counters went down (restarted) at ${resets.join(", ")}: this interval counts from the reset there`);
    lines.push("", documentLine(now, at), storeLine(now, interval.counts));
  }
  lines.push(...releaseLines(input.release, at), "");
  const many = input.urls.length > 1;
  lines.push(
    many
      ? `routers  ${answered} of ${input.urls.length} answered; figures summed over those with two readings`
      : "router",
  );
  for (const r of interval.routers) lines.push(routerText(r, interval));
  return lines.join("\n") + "\n";
}
