/** `gray status`: reads the router's /gray/status (JSON) and shows it as a table. */
import { request } from "undici";
import { RULES } from "../../lua-src/gray/rules.ts";
import type { Status } from "../../lua-src/gray/status.ts";
import { quantile } from "./latency.ts";

export const DEFAULT_STATUS_URL = "http://127.0.0.1/gray/status";

export class RouterError extends Error {}

export async function fetchStatus(url: string): Promise<Status> {
  let status: number;
  let text: string;
  try {
    const res = await request(url, { headersTimeout: 5000, bodyTimeout: 5000 });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    throw new RouterError(`cannot read ${url}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (status !== 200) throw new RouterError(`${url} answered ${status}: ${text.trim().slice(0, 200)}`);
  try {
    return JSON.parse(text) as Status;
  } catch {
    throw new RouterError(`${url} did not answer JSON (is it the router's /gray/status location?)`);
  }
}

/** Rows as aligned columns: the first left-aligned, the others right-aligned, two spaces apart. */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}

export const percent = (part: number, whole: number) => (whole === 0 ? "-" : `${((100 * part) / whole).toFixed(2)} %`);

export function renderStatus(s: Status): string {
  const routeRows = [["route", "requests", "5xx", "5xx rate", "avg upstream", "p99"]];
  for (const route of s.route_names) {
    const r = s.routes[route]!;
    const avg = r.requests === 0 ? "-" : `${((1000 * r.upstream_seconds) / r.requests).toFixed(1)} ms`;
    const p99 = quantile(r.latency, 0.99, s.latency_le);
    const p99Text = p99 === undefined ? "-" : `${(1000 * p99).toFixed(1)} ms`;
    routeRows.push([route, `${r.requests}`, `${r.responses_5xx}`, percent(r.responses_5xx, r.requests), avg, p99Text]);
  }
  const decided = RULES.reduce((n, rule) => n + s.rules[rule], 0);
  const ruleRows = [
    ["rule", "decisions", "share"],
    ...RULES.map((rule) => [rule, `${s.rules[rule]}`, percent(s.rules[rule], decided)]),
  ];
  const lookups = s.store.hits + s.store.misses + s.store.fallbacks;
  const storeRows = [
    ["store", "lookups", "share"],
    ["cache hits", `${s.store.hits}`, percent(s.store.hits, lookups)],
    ["memcached", `${s.store.misses}`, percent(s.store.misses, lookups)],
    ["fallbacks", `${s.store.fallbacks}`, percent(s.store.fallbacks, lookups)],
  ];
  const errorRows = [
    ["store errors", "count"],
    ["lookup", `${s.store_errors.lookup}`],
    ["refresh", `${s.store_errors.refresh}`],
    ["cache evictions", `${s.cache_evictions}`],
  ];
  return [
    `weight ${s.weight} %, ${s.ranges} range(s), memcached ${s.memcached}, cache ${s.cache_dict === false ? "off" : s.cache_dict}`,
    "",
    ...table(routeRows),
    "",
    ...table(ruleRows),
    "",
    ...table(storeRows),
    "",
    ...table(errorRows),
    "",
  ].join("\n");
}

/** A router in a few words: its revision, its canaries' weights, its requests (stable + the canaries). */
export function routerSummary(s: Status): string {
  const weights = s.route_names
    .filter((r) => s.canaries[r] !== undefined)
    .map((r) => `${r} ${s.canaries[r]!.weight} %`)
    .join(", ");
  const canaryRequests = s.route_names
    .filter((r) => r !== "stable")
    .reduce((n, r) => n + (s.routes[r]?.requests ?? 0), 0);
  return `revision ${s.document.revision ?? "none"}, ${weights}, ${s.routes.stable?.requests ?? 0} + ${canaryRequests} requests`;
}

/** One router of several, as a line: its summary, or NO ANSWER and why. */
export function routerLine(url: string, s: Status | undefined, error: string | undefined): string {
  return s === undefined ? `  ${url}  NO ANSWER: ${error ?? "no answer"}` : `  ${url}  ${routerSummary(s)}`;
}
