/**
 * What /gray/status reports, and its two renderings (JSON, Prometheus text). Pure: the router
 * renders it in Lua; the CLI reads the same shape back with these types.
 */
import { COPIES } from "./document.ts";
import type { Rule } from "./rules.ts";
import { RULES } from "./rules.ts";

export interface RouteCounts {
  requests: number;
  responses_5xx: number;
  /** Sum of $upstream_response_time over the route's requests. */
  upstream_seconds: number;
  /** The route's response times: $upstream_response_time, or $request_time where no upstream answered. */
  latency: Histogram;
}

/**
 * Response times in fixed buckets (Prometheus's defaults, LATENCY_LE): counts[i] is the number of
 * requests that took more than LATENCY_LE[i - 1] and at most LATENCY_LE[i] seconds (not cumulative),
 * the last entry those over the last bound (+Inf). sum in seconds; count is the total of counts.
 */
export interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

/** Upper bounds of the latency buckets in seconds, as Prometheus client libraries default them; +Inf follows. */
export const LATENCY_LE = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The bucket a time falls in: the first whose bound it does not exceed, LATENCY_LE.length for +Inf. */
export function latencyBucket(seconds: number): number {
  let i = 0;
  while (i < LATENCY_LE.length && seconds > LATENCY_LE[i]!) i++;
  return i;
}

/** Per-client flag lookups, each counted once by how it was answered: the three add up to all lookups. */
export interface StoreCounts {
  /** Answered from the shared-dict cache. */
  hits: number;
  /** Answered by memcached. */
  misses: number;
  /** Answered without memcached because it failed or is being rested: from a stale cache entry, else as absent. */
  fallbacks: number;
}

/** memcached failures (connect, timeout, bad reply), by what was being done: a per-IP key lookup, or a check or load of the rules document. */
export interface StoreErrorCounts {
  lookup: number;
  refresh: number;
}

/** The rule options as configured, in the form configure() takes them (so `gray explain` can use them). */
export interface RuleConfig {
  key_prefix: string;
  canary_value: string;
  override_header?: string;
  override_cookie?: string;
  user_header?: string;
  user_cookie?: string;
  ranges: string[];
  weight: number;
  ip_keys: boolean;
  /** The canaries besides the default one, as the `canaries` option names them. */
  canaries: Record<string, { location: string; upstream: string }>;
}

/** The rules document as the worker that answers holds it. */
export interface DocumentStatus {
  /** undefined until a revision is loaded. */
  revision: number | undefined;
  /** Seconds since that revision was written (revisions are times). */
  age_s: number | undefined;
  /** Where the revision came from: memcached, or the shared dict's copy (a reload, a worker's first request). */
  source: string | undefined;
  /** Unix seconds. */
  loaded_at: number | undefined;
  /** The last time memcached answered a check of the pointer. */
  checked_at: number | undefined;
  bytes: number;
  entries: { ips: number; ranges: number; users: number };
  /** What is wrong now (store down, document gone, a revision refused), undefined when nothing. */
  last_error: string | undefined;
  /** Since when memcached has lacked the loaded revision (it is being written back). */
  missing_since: number | undefined;
}

/** A canary in force: its weight and where it sends requests. */
export interface CanaryStatus {
  weight: number;
  location: string;
  upstream: string;
}

/** Where `gray release` keeps the running release (JSON), under the key prefix: one at a time, any shell can read it. */
export const RELEASE_KEY = "gray:release";

export function releaseKey(prefix: string): string {
  return prefix + RELEASE_KEY;
}

/**
 * The keys of a worker's rules check, one get every cache_ttl_ms: the pointer's COPIES and the
 * release key (memcached's cmd_get counts each).
 */
export const CHECK_KEYS = COPIES + 1;

/** A release key holding more than this is not shown (/gray/status says so): it is untrusted store content. */
export const MAX_RELEASE_BYTES = 65536;

/**
 * The release key as /gray/status renders it: its JSON re-encoded by the nginx side (which alone can
 * parse it, with cjson), or why it is not shown. Neither when no release runs.
 */
export interface ReleaseJson {
  /** A JSON object, as text. */
  json: string | undefined;
  /** Why the key's content is not shown: not JSON, not an object, too large. */
  error: string | undefined;
}

export interface Status {
  routes: Record<string, RouteCounts>;
  /** The latency buckets' upper bounds (LATENCY_LE); routers before 0.3 have none. */
  latency_le: number[];
  /** "stable", then the canaries, in the order routes are listed. */
  route_names: string[];
  rules: Record<Rule, number>;
  store: StoreCounts;
  store_errors: StoreErrorCounts;
  /** Entries the full cache dict evicted to make room for a lookup's result (set()'s forcible). */
  cache_evictions: number;
  /** The default canary's weight, and the number of ranges in force now (configuration plus document). */
  weight: number;
  ranges: number;
  canaries: Record<string, CanaryStatus>;
  /** Where stable's requests go now: the options' names, or the document's after a promote. */
  stable_target: { location: string; upstream: string };
  document: DocumentStatus;
  /** The lua_shared_dict in use, or false when running uncached. */
  cache_dict: string | false;
  memcached: string;
  config: RuleConfig;
  /**
   * The running release, `gray release`'s state in memcached (<key_prefix>gray:release) as this
   * worker last read it with the rules pointer: null when none runs or the key is unreadable.
   * Untrusted content: its shape is what the key holds. Routers before 0.3 have no such field.
   */
  release?: Record<string, unknown> | null;
  /** Why the release key's content is not shown (not JSON, not an object, too large), else null. */
  release_error?: string | null;
}

export const STORE_FIELDS: (keyof StoreCounts)[] = ["hits", "misses", "fallbacks"];
export const STORE_ERROR_FIELDS: (keyof StoreErrorCounts)[] = ["lookup", "refresh"];
/** The route counters that are plain numbers (latency is a histogram). */
export const ROUTE_FIELDS: ("requests" | "responses_5xx" | "upstream_seconds")[] = [
  "requests",
  "responses_5xx",
  "upstream_seconds",
];

/** A digit's value, or NaN (which fails every comparison) for any other character. */
function digitAt(text: string, i: number): number {
  const d = text.charCodeAt(i) - 48;
  return d >= 0 && d <= 9 ? d : NaN;
}

/**
 * A time under 10 s as nginx writes it ("0.004": %T.%03M), read with no loop and no tonumber():
 * the log phase's usual case. In LuaJIT a decimal's tonumber() was the log phase's largest single
 * cost (about 850 of the router's 6,000 instructions per request, counted by callgrind), and a
 * loop over the characters made the traces exit; undefined for any other text.
 */
function shortTime(text: string): number | undefined {
  if (text.length !== 5 || text.charCodeAt(1) !== 46) return undefined;
  const ms = digitAt(text, 0) * 1000 + digitAt(text, 2) * 100 + digitAt(text, 3) * 10 + digitAt(text, 4);
  // The quotient of two integers is the double tonumber() reads.
  return ms >= 0 ? ms / 1000 : undefined;
}

/** Sum of the times in $upstream_response_time ("0.004", "0.001, 0.003", "0.002 : 0.001", "-") or $request_time, in seconds. */
export function sumTimes(text: string): number {
  const short = shortTime(text);
  if (short !== undefined) return short;
  let total = 0;
  let start = -1;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 32;
    const numeric = (c >= 48 && c <= 57) || c === 46;
    if (numeric && start < 0) start = i;
    else if (!numeric && start >= 0) {
      const value = Number(text.substring(start, i));
      if (value === value) total += value;
      start = -1;
    }
  }
  return total;
}

function jsonString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34 || c === 92) out += "\\" + s.charAt(i);
    else if (c < 32)
      out += c < 16 ? `\\u000${"0123456789abcdef".charAt(c)}` : `\\u001${"0123456789abcdef".charAt(c - 16)}`;
    else out += s.charAt(i);
  }
  return out + '"';
}

function jsonObject(fields: string[][]): string {
  const parts: string[] = [];
  for (const [name, value] of fields) parts.push(`${jsonString(name!)}:${value!}`);
  return `{${parts.join(",")}}`;
}

function jsonCounts<T>(counts: T, names: (keyof T)[]): string {
  return jsonObject(names.map((n) => [n as string, String(counts[n])]));
}

function jsonHistogram(h: Histogram): string {
  return jsonObject([
    ["counts", `[${h.counts.join(",")}]`],
    ["sum", `${h.sum}`],
    ["count", `${h.count}`],
  ]);
}

function jsonRoute(r: RouteCounts): string {
  const fields = ROUTE_FIELDS.map((n) => [n as string, String(r[n])]);
  fields.push(["latency", jsonHistogram(r.latency)]);
  return jsonObject(fields);
}

function jsonOptional(value: string | number | undefined): string {
  return value === undefined ? "null" : typeof value === "string" ? jsonString(value) : `${value}`;
}

function jsonDocument(d: DocumentStatus): string {
  return jsonObject([
    ["revision", jsonOptional(d.revision)],
    ["age_s", jsonOptional(d.age_s)],
    ["source", jsonOptional(d.source)],
    ["loaded_at", jsonOptional(d.loaded_at)],
    ["checked_at", jsonOptional(d.checked_at)],
    ["bytes", `${d.bytes}`],
    ["entries", jsonCounts(d.entries, ["ips", "ranges", "users"])],
    ["last_error", jsonOptional(d.last_error)],
    ["missing_since", jsonOptional(d.missing_since)],
  ]);
}

function jsonCanaries(s: Status): string {
  const fields: string[][] = [];
  for (const name of s.route_names) {
    const c = s.canaries[name];
    if (c === undefined) continue;
    fields.push([
      name,
      jsonObject([
        ["weight", `${c.weight}`],
        ["location", jsonString(c.location)],
        ["upstream", jsonString(c.upstream)],
      ]),
    ]);
  }
  return jsonObject(fields);
}

function jsonConfig(c: RuleConfig): string {
  const fields: string[][] = [
    ["key_prefix", jsonString(c.key_prefix)],
    ["canary_value", jsonString(c.canary_value)],
  ];
  for (const name of ["override_header", "override_cookie", "user_header", "user_cookie"] as const) {
    const value = c[name];
    if (value !== undefined) fields.push([name, jsonString(value)]);
  }
  fields.push(["ranges", `[${c.ranges.map((r) => jsonString(r)).join(",")}]`], ["weight", `${c.weight}`]);
  fields.push(["ip_keys", c.ip_keys ? "true" : "false"]);
  const canaries: string[][] = [];
  for (const name in c.canaries) {
    const t = c.canaries[name]!;
    canaries.push([
      name,
      jsonObject([
        ["location", jsonString(t.location)],
        ["upstream", jsonString(t.upstream)],
      ]),
    ]);
  }
  // An empty object, not an empty list: cjson-free JSON that configure() reads back as a table.
  fields.push(["canaries", jsonObject(canaries)]);
  return jsonObject(fields);
}

/**
 * The status as JSON; the release comes pre-encoded (`release`): parsing and re-encoding what the
 * store holds takes cjson, which only the nginx side has. Absent: no release.
 */
export function statusJson(s: Status, release: ReleaseJson = { json: undefined, error: undefined }): string {
  return (
    jsonObject([
      ["routes", jsonObject(s.route_names.map((r) => [r, jsonRoute(s.routes[r]!)]))],
      ["latency_le", `[${s.latency_le.join(",")}]`],
      ["route_names", `[${s.route_names.map((r) => jsonString(r)).join(",")}]`],
      ["rules", jsonCounts(s.rules, RULES)],
      ["store", jsonCounts(s.store, STORE_FIELDS)],
      ["store_errors", jsonCounts(s.store_errors, STORE_ERROR_FIELDS)],
      ["cache_evictions", `${s.cache_evictions}`],
      ["weight", `${s.weight}`],
      ["ranges", `${s.ranges}`],
      ["canaries", jsonCanaries(s)],
      [
        "stable_target",
        jsonObject([
          ["location", jsonString(s.stable_target.location)],
          ["upstream", jsonString(s.stable_target.upstream)],
        ]),
      ],
      ["document", jsonDocument(s.document)],
      ["cache_dict", s.cache_dict === false ? "false" : jsonString(s.cache_dict)],
      ["memcached", jsonString(s.memcached)],
      ["config", jsonConfig(s.config)],
      ["release", release.json ?? "null"],
      ["release_error", jsonOptional(release.error)],
    ]) + "\n"
  );
}

function metric(lines: string[], name: string, type: string, help: string, samples: string[][]): void {
  lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  for (const [labels, value] of samples) lines.push(`${name}${labels!} ${value!}`);
}

export function statusPrometheus(s: Status): string {
  const lines: string[] = [];
  const byRoute = (field: (typeof ROUTE_FIELDS)[number]) =>
    s.route_names.map((r) => [`{route="${r}"}`, `${s.routes[r]![field]}`]);
  metric(lines, "gray_requests_total", "counter", "Requests answered, by route.", byRoute("requests"));
  metric(
    lines,
    "gray_responses_5xx_total",
    "counter",
    "Responses with a 5xx status, by route.",
    byRoute("responses_5xx"),
  );
  metric(
    lines,
    "gray_upstream_seconds_total",
    "counter",
    "Sum of upstream response times, by route.",
    byRoute("upstream_seconds"),
  );
  lines.push(
    "# HELP gray_upstream_response_seconds Response times by route: $upstream_response_time, or $request_time where no upstream answered.",
    "# TYPE gray_upstream_response_seconds histogram",
  );
  for (const route of s.route_names) {
    const h = s.routes[route]!.latency;
    let cumulative = 0;
    for (let i = 0; i <= s.latency_le.length; i++) {
      cumulative += h.counts[i] ?? 0;
      const le = i < s.latency_le.length ? `${s.latency_le[i]}` : "+Inf";
      lines.push(`gray_upstream_response_seconds_bucket{route="${route}",le="${le}"} ${cumulative}`);
    }
    lines.push(`gray_upstream_response_seconds_sum{route="${route}"} ${h.sum}`);
    lines.push(`gray_upstream_response_seconds_count{route="${route}"} ${h.count}`);
  }
  metric(
    lines,
    "gray_decisions_total",
    "counter",
    "Routing decisions, by the rule that decided.",
    RULES.map((r) => [`{rule="${r}"}`, `${s.rules[r]}`]),
  );
  metric(
    lines,
    "gray_store_lookups_total",
    "counter",
    "Flag lookups, each counted once by how it was answered.",
    STORE_FIELDS.map((f) => [`{result="${f}"}`, `${s.store[f]}`]),
  );
  metric(
    lines,
    "gray_store_errors_total",
    "counter",
    "memcached failures, by operation (lookup of a per-IP key, refresh of the rules document).",
    STORE_ERROR_FIELDS.map((f) => [`{operation="${f}"}`, `${s.store_errors[f]}`]),
  );
  metric(lines, "gray_cache_evictions_total", "counter", "Entries the full cache dict evicted to store a lookup.", [
    ["", `${s.cache_evictions}`],
  ]);
  metric(lines, "gray_weight_percent", "gauge", "The default canary's weight in force.", [["", `${s.weight}`]]);
  metric(
    lines,
    "gray_canary_weight_percent",
    "gauge",
    "Each canary's weight in force.",
    s.route_names
      .filter((r) => s.canaries[r] !== undefined)
      .map((r) => [`{canary="${r}"}`, `${s.canaries[r]!.weight}`]),
  );
  const d = s.document;
  metric(lines, "gray_rules_revision", "gauge", "The rules revision in force (0: none loaded).", [
    ["", `${d.revision ?? 0}`],
  ]);
  metric(lines, "gray_rules_entries", "gauge", "Entries of the rules revision in force, by kind.", [
    ['{kind="ip"}', `${d.entries.ips}`],
    ['{kind="range"}', `${d.entries.ranges}`],
    ['{kind="user"}', `${d.entries.users}`],
  ]);
  metric(lines, "gray_rules_problem", "gauge", "1 while the rules in memcached cannot be loaded or are missing.", [
    ["", d.last_error === undefined && d.missing_since === undefined ? "0" : "1"],
  ]);
  metric(lines, "gray_ranges", "gauge", "Canary ranges in force (configured plus memcached).", [["", `${s.ranges}`]]);
  return lines.join("\n") + "\n";
}
