/// <reference lib="dom" />
/**
 * The status page's code. It polls the location that served it for JSON every second, works out
 * rates from successive answers (the history lives here; the router keeps none), and draws them as
 * hand-made SVG. `npm run build` compiles it and inlines it in page/status.html as the page's one
 * module script, so it imports nothing at run time (type-only imports are erased).
 *
 * The top half is pure and exported: test/status-page.test.ts imports this file in Node and tests
 * it there. Nothing touches the DOM until start(), which runs only where there is a document.
 */
import type { Histogram, RouteCounts, Status } from "../lua-src/gray/status.ts";

/** How often the page asks for the JSON. */
export const POLL_MS = 1000;
/**
 * Rates are taken over the intervals of the last WINDOW_S seconds: workers add their counts to the
 * shared dict once a second, so the difference of two answers one second apart jumps between none
 * and two seconds' worth; five smooth that out and still follow a step within seconds.
 */
export const WINDOW_S = 5;
/** Points kept per chart: 15 minutes at one a second. */
export const HISTORY_POINTS = 900;

/** What a route's counters grew by between two answers. */
export interface Increase {
  requests: number;
  errors: number;
  /** The latency buckets' increases, as in RouteCounts.latency.counts (not cumulative). */
  counts: number[];
}

/** Between two successive answers. */
export interface Interval {
  /** When the later answer came (ms, the page's clock). */
  at: number;
  seconds: number;
  routes: Record<string, Increase>;
  rules: Record<string, number>;
}

/** A route's figures over the window. */
export interface Figures {
  rps: number;
  errorsPerS: number;
  /** 5xx responses over responses, in percent; undefined without responses. */
  errorShare: number | undefined;
  /** From the latency buckets' increases; undefined without observations. */
  p99Ms: number | undefined;
}

/** One poll's figures: a point on each chart. */
export interface Point {
  at: number;
  /** The seconds the window's intervals span. */
  seconds: number;
  routes: Record<string, Figures>;
  /** Decisions per second by rule. */
  rules: Record<string, number>;
}

/** What a counter grew by: one that went down was reset (a restart, a cleared dict) and has grown by its new value since. */
export function counterIncrease(before: number | undefined, after: number): number {
  return before === undefined || after < before ? after : after - before;
}

function bucketsOf(r: RouteCounts): number[] {
  // Routers before 0.3 have no histogram.
  return (r.latency as Histogram | undefined)?.counts ?? [];
}

/**
 * A route's increase. Its counters are reset together (they live in the same shared dict), so any
 * one of them going down means all were: the new values are then the increase. A route the earlier
 * answer did not have (a reload added it) counts from zero.
 */
export function routeIncrease(before: RouteCounts | undefined, after: RouteCounts): Increase {
  const now = bucketsOf(after);
  const whole = { requests: after.requests, errors: after.responses_5xx, counts: [...now] };
  if (before === undefined) return whole;
  const then = bucketsOf(before);
  const reset =
    after.requests < before.requests ||
    after.responses_5xx < before.responses_5xx ||
    now.some((n, i) => n < (then[i] ?? 0));
  if (reset) return whole;
  return {
    requests: after.requests - before.requests,
    errors: after.responses_5xx - before.responses_5xx,
    counts: now.map((n, i) => n - (then[i] ?? 0)),
  };
}

export function intervalOf(before: Status, after: Status, at: number, seconds: number): Interval {
  const routes: Record<string, Increase> = {};
  for (const name of after.route_names) {
    const r = after.routes[name];
    if (r !== undefined) routes[name] = routeIncrease(before.routes[name], r);
  }
  const rules: Record<string, number> = {};
  for (const [rule, n] of Object.entries(after.rules)) {
    rules[rule] = counterIncrease((before.rules as Record<string, number>)[rule], n);
  }
  return { at, seconds, routes, rules };
}

/**
 * The q-quantile in seconds from bucket counts, as Prometheus's histogram_quantile() and `gray
 * status` take it (node-src/cli/latency.ts): the bucket holding the rank, a linear guess inside it;
 * past the last bound, that bound. undefined without observations.
 */
export function quantile(counts: number[], q: number, le: number[]): number | undefined {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0 || le.length === 0) return undefined;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i] ?? 0;
    if (n > 0 && below + n >= rank) {
      if (i >= le.length) return le[le.length - 1];
      const lower = i === 0 ? 0 : le[i - 1]!;
      return lower + (le[i]! - lower) * ((rank - below) / n);
    }
    below += n;
  }
  return le[le.length - 1];
}

/** A route's figures over these intervals (the window). */
export function figures(intervals: Interval[], route: string, le: number[]): Figures {
  let seconds = 0;
  let requests = 0;
  let errors = 0;
  const counts: number[] = [];
  for (const interval of intervals) {
    seconds += interval.seconds;
    const r = interval.routes[route];
    if (r === undefined) continue;
    requests += r.requests;
    errors += r.errors;
    r.counts.forEach((n, i) => (counts[i] = (counts[i] ?? 0) + n));
  }
  const p99 = quantile(counts, 0.99, le);
  return {
    rps: seconds > 0 ? requests / seconds : 0,
    errorsPerS: seconds > 0 ? errors / seconds : 0,
    errorShare: requests > 0 ? (100 * errors) / requests : undefined,
    p99Ms: p99 === undefined ? undefined : 1000 * p99,
  };
}

/** The answers so far, as intervals (the window's) and points (the charts'). */
export class History {
  private last: { status: Status; at: number } | undefined;
  /** The intervals inside the window, oldest first. */
  intervals: Interval[] = [];
  readonly points: Point[] = [];
  answers = 0;

  constructor(
    private readonly windowS = WINDOW_S,
    private readonly keep = HISTORY_POINTS,
  ) {}

  /** Takes an answer that came at `at` (ms); the new point, once there are two answers. */
  add(status: Status, at: number): Point | undefined {
    this.answers++;
    const last = this.last;
    this.last = { status, at };
    if (last === undefined || at <= last.at) return undefined;
    this.intervals.push(intervalOf(last.status, status, at, (at - last.at) / 1000));
    this.intervals = this.intervals.filter((i) => i.at > at - this.windowS * 1000);
    const le = status.latency_le ?? [];
    const routes: Record<string, Figures> = {};
    for (const name of status.route_names) routes[name] = figures(this.intervals, name, le);
    const seconds = this.intervals.reduce((n, i) => n + i.seconds, 0);
    const rules: Record<string, number> = {};
    for (const rule of Object.keys(status.rules)) {
      const n = this.intervals.reduce((sum, i) => sum + (i.rules[rule] ?? 0), 0);
      rules[rule] = seconds > 0 ? n / seconds : 0;
    }
    const point = { at, seconds, routes, rules };
    this.points.push(point);
    if (this.points.length > this.keep) this.points.splice(0, this.points.length - this.keep);
    return point;
  }
}

/** A value of the release key (untrusted store content: any shape) as text, or undefined. */
function text(v: unknown): string | undefined {
  return typeof v === "string" ? v : typeof v === "number" && Number.isFinite(v) ? String(v) : undefined;
}

function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** A list; an empty object too (a router whose cjson cannot tell an empty list from an empty object encodes [] as {}). */
function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function record(v: unknown): Record<string, unknown> | undefined {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

export function ago(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}

/** A figure for a table cell: undefined as "–". */
export function fmt(n: number | undefined, digits = 1): string {
  return n === undefined || !Number.isFinite(n) ? "–" : n.toFixed(digits);
}

export interface Panel {
  /** One line saying what is going on. */
  headline: string;
  /** "bad", "warn", "good" or "muted": how the headline is shown. */
  tone: string;
  rows: [string, string][];
}

/** The release panel from /gray/status's release and release_error, at `now` (Unix ms). */
export function releasePanel(release: unknown, error: unknown, now: number): Panel {
  if (release === undefined && error === undefined)
    return { headline: "this router does not report releases (before 0.3)", tone: "muted", rows: [] };
  const r = record(release);
  if (r === undefined) {
    const why = text(error);
    return why === undefined
      ? { headline: "no release running", tone: "muted", rows: [] }
      : { headline: `the release key is unreadable: ${why}`, tone: "bad", rows: [] };
  }
  const canary = text(r.canary) ?? "?";
  const steps = list(r.steps).map(text);
  const step = num(r.step);
  const weight = num(r.weight);
  const lease = num(r.lease_until);
  const stale = lease !== undefined && now > lease;
  const control = text(r.control);
  const state = text(r.state) ?? "?";
  const doing = stale ? "STALE (its lease is over: its process is gone?)" : control === "abort" ? "aborting" : state;
  const where = step === undefined || step === 0 ? "starting" : `step ${step}/${steps.length}`;
  const rows: [string, string][] = [
    ["canary", canary],
    ["step", `${where}${weight === undefined ? "" : `, weight ${weight} %`}`],
    ["steps", steps.map((s) => `${s ?? "?"} %`).join(" → ")],
    ["state", doing + (control !== undefined && control !== "run" ? ` (asked: ${control})` : "")],
  ];
  const from = num(r.from_weight);
  if (from !== undefined) rows.push(["from weight", `${from} %`]);
  const owner = text(r.owner);
  if (owner !== undefined) rows.push(["owner", `${owner}${num(r.pid) === undefined ? "" : ` (pid ${num(r.pid)})`}`]);
  const started = num(r.started_at);
  if (started !== undefined) rows.push(["started", `${ago((now - started) / 1000)} ago`]);
  if (lease !== undefined)
    rows.push(["lease", stale ? `expired ${ago((now - lease) / 1000)} ago` : `${ago((lease - now) / 1000)} left`]);
  const samples = record(r.samples);
  for (const route of ["canary", "stable"]) {
    const s = record(samples?.[route]);
    if (s === undefined) continue;
    const rate = num(s.error_rate);
    const p99 = num(s.p99_ms);
    rows.push([
      `last window, ${route}`,
      `${text(s.requests) ?? "?"} requests, 5xx ${rate === undefined ? "–" : `${(100 * rate).toFixed(2)} %`}, p99 ${p99 === undefined ? "–" : `${p99.toFixed(1)} ms`}`,
    ]);
  }
  const verdict = record(list(r.verdicts).at(-1));
  if (verdict !== undefined) {
    const reasons = list(verdict.reasons)
      .map(text)
      .filter((x) => x !== undefined);
    rows.push([
      "last check",
      `${text(verdict.verdict) ?? "?"} at step ${text(verdict.step) ?? "?"}${reasons.length ? `: ${reasons.join("; ")}` : ""}`,
    ]);
  }
  const tone = stale || control === "abort" || state === "rolling_back" ? "bad" : state === "paused" ? "warn" : "good";
  return { headline: `release of ${canary}: ${where}, ${doing}`, tone, rows };
}

/** The rules document panel, at `now` (Unix ms). */
export function documentPanel(s: Status, now: number): Panel {
  const d = s.document;
  const when = (t: number | undefined) => (t === undefined || t === null ? "–" : `${ago(now / 1000 - t)} ago`);
  const rows: [string, string][] = [
    ["revision", d.revision === undefined || d.revision === null ? "none loaded" : String(d.revision)],
    ["age", d.age_s === undefined || d.age_s === null ? "–" : ago(d.age_s)],
    ["source", d.source ?? "–"],
    ["loaded", when(d.loaded_at)],
    ["checked", when(d.checked_at)],
    ["size", `${d.bytes} bytes`],
    ["entries", `${d.entries.ips} IPs, ${d.entries.ranges} ranges, ${d.entries.users} users`],
    ["ranges in force", String(s.ranges)],
    ["last error", d.last_error ?? "none"],
  ];
  if (d.missing_since !== undefined && d.missing_since !== null)
    rows.push(["missing from memcached", `since ${when(d.missing_since)}`]);
  const problem = d.last_error ?? (d.missing_since === undefined || d.missing_since === null ? undefined : "missing");
  return {
    headline: problem === undefined ? "ok" : `problem: ${problem}`,
    tone: problem === undefined ? "good" : "bad",
    rows,
  };
}

const share = (part: number, whole: number) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)} %` : "–");

export function storePanel(s: Status): Panel {
  const lookups = s.store.hits + s.store.misses + s.store.fallbacks;
  const errors = s.store_errors.lookup + s.store_errors.refresh;
  return {
    headline: errors > 0 ? `${errors} memcached failure(s) since start` : "no memcached failures",
    tone: errors > 0 ? "warn" : "good",
    rows: [
      ["memcached", s.memcached],
      ["cache dict", s.cache_dict === false ? "off" : s.cache_dict],
      ["lookups from cache", `${s.store.hits} (${share(s.store.hits, lookups)})`],
      ["lookups from memcached", `${s.store.misses} (${share(s.store.misses, lookups)})`],
      ["fallbacks", `${s.store.fallbacks} (${share(s.store.fallbacks, lookups)})`],
      ["errors: lookup / refresh", `${s.store_errors.lookup} / ${s.store_errors.refresh}`],
      ["cache evictions", String(s.cache_evictions)],
      ["key prefix", s.config.key_prefix === "" ? "(none)" : s.config.key_prefix],
    ],
  };
}

/** A chart's upper bound: 1, 2 or 5 times a power of ten, at least `floor`. */
export function niceMax(value: number, floor: number): number {
  const v = Math.max(value, floor);
  const power = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * power >= v) return m * power;
  return 10 * power;
}

export interface ChartGeometry {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
  /** The time the x axis spans at least, in ms. */
  minSpanMs: number;
}

export const CHART: ChartGeometry = {
  width: 480,
  height: 170,
  left: 44,
  right: 8,
  top: 8,
  bottom: 20,
  minSpanMs: 60000,
};

/** An SVG path through the values (undefined breaks the line), scaled into the chart's plot area. */
export function seriesPath(
  times: number[],
  values: (number | undefined)[],
  max: number,
  g: ChartGeometry = CHART,
): { d: string; points: number } {
  const last = times[times.length - 1] ?? 0;
  const span = Math.max(g.minSpanMs, last - (times[0] ?? last));
  const plotW = g.width - g.left - g.right;
  const plotH = g.height - g.top - g.bottom;
  let d = "";
  let points = 0;
  let pen = false;
  values.forEach((v, i) => {
    if (v === undefined || !Number.isFinite(v)) {
      pen = false;
      return;
    }
    const x = g.left + plotW - ((last - times[i]!) / span) * plotW;
    const y = g.top + plotH - (Math.min(v, max) / max) * plotH;
    d += `${pen ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`;
    pen = true;
    points++;
  });
  return { d, points };
}

// ---- The browser part: everything below touches the DOM. ----

const SVG = "http://www.w3.org/2000/svg";

function byId(id: string): HTMLElement {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`the page has no #${id}`);
  return el;
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  content?: string,
  attrs: Record<string, string> = {},
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (content !== undefined) el.textContent = content;
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

function svgElement(tag: string, attrs: Record<string, string>, content?: string): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (content !== undefined) el.textContent = content;
  return el;
}

/** A route's colour class: stable first, then the canaries in the router's order. */
const colour = (names: string[], route: string) => `s${Math.max(0, names.indexOf(route)) % 8}`;

function cell(content: string, field: string, value?: number | string, className?: string): HTMLTableCellElement {
  const td = element("td", content, { "data-field": field });
  if (className !== undefined) td.className = className;
  if (value !== undefined) td.setAttribute("data-value", String(value));
  return td;
}

function renderRoutes(s: Status, point: Point | undefined): void {
  const body = byId("routes").querySelector("tbody")!;
  const canaryWeights = Object.values(s.canaries).reduce((n, c) => n + c.weight, 0);
  const rows = s.route_names.map((name) => {
    const r = s.routes[name];
    const c = s.canaries[name];
    const f = point?.routes[name];
    const target = name === "stable" ? s.stable_target : c;
    const weight = c === undefined ? Math.max(0, 100 - canaryWeights) : c.weight;
    const tr = element("tr", undefined, { "data-route": name });
    const label = element("td", undefined, { "data-field": "route" });
    label.append(element("span", undefined, { class: `swatch ${colour(s.route_names, name)}` }), name);
    tr.append(
      label,
      cell(`${fmt(weight, weight % 1 === 0 ? 0 : 2)} %${c === undefined ? " (rest)" : ""}`, "weight", weight),
      cell(target === undefined ? "–" : `${target.upstream} (${target.location})`, "target", undefined, "text"),
      cell(String(r?.requests ?? 0), "requests", r?.requests ?? 0),
      cell(fmt(f?.rps), "rps", f?.rps ?? ""),
      cell(fmt(f?.errorsPerS, 2), "errors_per_s", f?.errorsPerS ?? ""),
      cell(f?.errorShare === undefined ? "–" : `${fmt(f.errorShare, 2)} %`, "error_share", f?.errorShare ?? ""),
      cell(f?.p99Ms === undefined ? "–" : `${fmt(f.p99Ms, 1)} ms`, "p99_ms", f?.p99Ms ?? ""),
    );
    return tr;
  });
  body.replaceChildren(...rows);
  byId("window").textContent =
    point === undefined
      ? "Rates appear with the second answer."
      : `Rates over the last ${point.seconds.toFixed(1)} s; requests since the router's counters started.`;
}

function renderChart(id: string, names: string[], points: Point[], pick: (f: Figures) => number | undefined): void {
  const svg = byId(id);
  const g = CHART;
  const times = points.map((p) => p.at);
  const series = names.map((name) => points.map((p) => (p.routes[name] ? pick(p.routes[name]) : undefined)));
  let top = 0;
  for (const values of series)
    for (const v of values) if (v !== undefined && Number.isFinite(v)) top = Math.max(top, v);
  const max = niceMax(top, 1);
  const plotH = g.height - g.top - g.bottom;
  const children: SVGElement[] = [];
  for (const f of [0, 0.5, 1]) {
    const y = (g.top + plotH - f * plotH).toFixed(1);
    children.push(
      svgElement("line", { class: "grid", x1: String(g.left), x2: String(g.width - g.right), y1: y, y2: y }),
    );
    const label = f * max;
    children.push(
      svgElement(
        "text",
        { x: String(g.left - 4), y: String(Number(y) + 4), "text-anchor": "end" },
        label >= 100 || label % 1 === 0 ? String(Math.round(label)) : label.toPrecision(2),
      ),
    );
  }
  const span = Math.max(g.minSpanMs, (times[times.length - 1] ?? 0) - (times[0] ?? 0));
  children.push(
    svgElement("text", { x: String(g.left), y: String(g.height - 4) }, `−${ago(span / 1000)}`),
    svgElement("text", { x: String(g.width - g.right), y: String(g.height - 4), "text-anchor": "end" }, "now"),
  );
  names.forEach((name, i) => {
    const { d, points: n } = seriesPath(times, series[i]!, max, g);
    children.push(
      svgElement("path", {
        class: `series ${colour(names, name)}`,
        "data-route": name,
        "data-points": String(n),
        d: d === "" ? "M0 0" : d,
      }),
    );
  });
  svg.replaceChildren(...children);
  svg.setAttribute("data-points", String(points.length));
}

function renderLegend(names: string[]): void {
  byId("legend").replaceChildren(
    ...names.map((name) => {
      const item = element("span");
      item.append(element("span", undefined, { class: `swatch ${colour(names, name)}` }), name);
      return item;
    }),
  );
}

function renderRules(s: Status, point: Point | undefined): void {
  const counts = s.rules as Record<string, number>;
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  byId("rules")
    .querySelector("tbody")!
    .replaceChildren(
      ...Object.entries(counts).map(([rule, n]) => {
        const tr = element("tr", undefined, { "data-rule": rule });
        tr.append(
          cell(rule, "rule"),
          cell(String(n), "decisions", n),
          cell(share(n, total), "share"),
          cell(fmt(point?.rules[rule]), "per_s", point?.rules[rule] ?? ""),
        );
        return tr;
      }),
    );
}

function renderPanel(id: string, panel: Panel, headlineFirst: boolean): void {
  const root = byId(id);
  const children: HTMLElement[] = [];
  if (root.tagName === "DL") {
    if (headlineFirst) children.push(element("dt", "status"), element("dd", panel.headline, { class: panel.tone }));
    for (const [k, v] of panel.rows) children.push(element("dt", k), element("dd", v));
    root.replaceChildren(...children);
    return;
  }
  const headline = element("p", panel.headline, { class: panel.tone, "data-field": "headline" });
  const dl = element("dl");
  for (const [k, v] of panel.rows) dl.append(element("dt", k), element("dd", v, { "data-field": k }));
  root.className = "";
  root.replaceChildren(headline, dl);
}

function render(s: Status, history: History, point: Point | undefined): void {
  const names = s.route_names;
  renderRoutes(s, point);
  renderChart("chart-rps", names, history.points, (f) => f.rps);
  renderChart("chart-errors", names, history.points, (f) => f.errorShare);
  renderChart("chart-p99", names, history.points, (f) => f.p99Ms);
  renderLegend(names);
  renderRules(s, point);
  renderPanel("release", releasePanel(s.release, s.release_error, Date.now()), true);
  renderPanel("document", documentPanel(s, Date.now()), true);
  renderPanel("store", storePanel(s), true);
}

function start(): void {
  const history = new History();
  // This location's JSON, whatever path it is mounted at: ?format=json replaces the query only.
  const url = new URL("?format=json", window.location.href).toString();
  byId("host").textContent = window.location.host;
  const state = byId("state");
  let lastOk = 0;
  const poll = async () => {
    const started = performance.now();
    try {
      const res = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (!res.ok) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
      const status = (await res.json()) as Status;
      const at = performance.now();
      const point = history.add(status, at);
      render(status, history, point);
      lastOk = Date.now();
      state.className = "muted";
      state.textContent = `updated ${new Date().toLocaleTimeString()} · ${history.answers} answers since the page opened`;
      document.body.setAttribute("data-answers", String(history.answers));
    } catch (err) {
      state.className = "bad";
      const since = lastOk === 0 ? "" : ` (last answer ${ago((Date.now() - lastOk) / 1000)} ago)`;
      state.textContent = `no answer from ${url}: ${err instanceof Error ? err.message : String(err)}${since}`;
    } finally {
      setTimeout(() => void poll(), Math.max(0, POLL_MS - (performance.now() - started)));
    }
  };
  void poll();
}

if (typeof document !== "undefined") start();
