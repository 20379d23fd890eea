/**
 * Which clients a weight sends to canary: the router's own rules (lua-src/gray/rules.ts, run
 * here as JavaScript) for clients that are not flagged, with no ranges, the default canary owning
 * the weight's buckets as a document written by `gray weight` from 0 has it. The split is a pure
 * function of the address, so tests compare the router with this exact set, not with odds.
 */
import { DEFAULT_CANARY, buildView } from "../lua-src/gray/document.ts";
import { type Lookups, type RuleOptions, decide } from "../lua-src/gray/rules.ts";
import { hashText } from "../node-src/cli/explain.ts";

export function canaryByWeight(options: RuleOptions, clients: string[], weight: number): Set<string> {
  const view = buildView(undefined, [], weight, [DEFAULT_CANARY], 0);
  const lookups: Lookups = { flag: () => undefined, now: () => 0, hash: hashText };
  return new Set(
    clients.filter((ip) => decide(options, lookups, view, ip, undefined, undefined, undefined).route !== "stable"),
  );
}
