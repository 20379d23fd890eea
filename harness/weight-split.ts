/**
 * Which clients a weight sends to canary: the router's own rules (lua-src/gray/rules.ts, run
 * here as JavaScript) for clients that are not flagged, with no ranges. The split is a pure
 * function of the address, so tests compare the router with this exact set, not with odds.
 */
import { buildRanges } from "../lua-src/gray/ranges.ts";
import { type Lookups, type RuleOptions, decide } from "../lua-src/gray/rules.ts";
import { hashText } from "../node-src/cli/explain.ts";

export function canaryByWeight(options: RuleOptions, clients: string[], weight: number): Set<string> {
  const noRanges = buildRanges([]);
  const lookups: Lookups = { flag: () => undefined, globals: () => ({ ranges: noRanges, weight }), hash: hashText };
  return new Set(clients.filter((ip) => decide(options, lookups, ip, undefined, undefined, undefined).canary));
}
