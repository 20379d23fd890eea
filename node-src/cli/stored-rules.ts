/**
 * The weight and the range list as memcached holds them, with what the router makes of them: a
 * stored weight it cannot read, or a range entry it cannot parse, is ignored by the router (the
 * configured weight applies; the entry is skipped), and the CLI says so instead of showing it as
 * if it were in force.
 */
import { formatCidr } from "../../lua-src/gray/ip.ts";
import { parseRangeList } from "../../lua-src/gray/ranges.ts";
import { RANGES_KEY, WEIGHT_KEY, parseWeight } from "../../lua-src/gray/rules.ts";
import type { AdminStore } from "./store.ts";

export const WEIGHT_IGNORED =
  "not a number from 0 to 100 (digits, one optional decimal point), so the router applies its configured weight";
export const RANGE_IGNORED = "not an IPv4 or IPv6 address or CIDR, so the router skips it";

export interface Ignored {
  /** As stored. */
  value: string;
  why: string;
}

export interface StoredRules {
  /** The stored weight the router uses; undefined when none is stored or it is ignored. */
  weight: number | undefined;
  /** What is stored under the weight key, undefined when nothing is. */
  weightText: string | undefined;
  weightIgnored: Ignored | undefined;
  /** The stored ranges the router uses, as nginx prints them. */
  ranges: string[];
  rangesIgnored: Ignored[];
}

export async function readStoredRules(store: AdminStore, prefix: string): Promise<StoredRules> {
  const weightText = await store.get(prefix + WEIGHT_KEY);
  const weight = weightText === undefined ? undefined : parseWeight(weightText);
  const list = parseRangeList((await store.get(prefix + RANGES_KEY)) ?? "");
  return {
    weight,
    weightText,
    weightIgnored:
      weightText !== undefined && weight === undefined ? { value: weightText, why: WEIGHT_IGNORED } : undefined,
    ranges: list.cidrs.map(formatCidr),
    rangesIgnored: list.invalid.map((value) => ({ value, why: RANGE_IGNORED })),
  };
}

/** One line per ignored value, for people. */
export function ignoredLines(rules: StoredRules, prefix: string): string[] {
  const lines: string[] = [];
  if (rules.weightIgnored)
    lines.push(
      `ignored by the router: ${prefix}${WEIGHT_KEY} = ${JSON.stringify(rules.weightIgnored.value)}: ${rules.weightIgnored.why}`,
    );
  for (const r of rules.rangesIgnored)
    lines.push(`ignored by the router: ${JSON.stringify(r.value)} in ${prefix}${RANGES_KEY}: ${r.why}`);
  return lines;
}
