/**
 * The last step of a release, as one edit of the rules document: the canary's targets (its
 * upstream {} block and its location) become stable's and stable's become the canary's, the
 * canary's weight returns to 0 and its entries (IPs, ranges, users) are cleared. Every client
 * was on the new version through the canary, and is on it through stable from the revision on:
 * a router holding either revision sends everyone to the new version. No reload: routers take
 * targets from the document (lua-src/gray/snapshot.ts's buildTargets) when their conf knows them.
 * undoPromote() swaps back, the canary taking all the weight no other canary holds, so the
 * undo moves nobody either (gray weight 0 then sends them to the old version).
 */
import type { RulesDocument } from "../../lua-src/gray/document.ts";
import { weightOf } from "../../lua-src/gray/document.ts";
import { BUCKETS_PER_PERCENT, ENTRY_KINDS, countBuckets, ensureCanary, entriesOf, setWeight } from "./edit.ts";

export interface Target {
  upstream: string;
  location: string;
}

export interface Promoted {
  /** The canary's weight before (percent). */
  was: number;
  /** Entries of the canary removed. */
  cleared: number;
  stable: Target;
  canary: Target;
}

/** Makes the canary's targets stable's and stable's the canary's; the canary's weight 0, its entries gone. */
export function promote(doc: RulesDocument, canary: string, now: { stable: Target; canary: Target }): Promoted {
  const def = ensureCanary(doc, canary);
  const was = weightOf(def);
  doc.stable = { upstream: now.canary.upstream, location: now.canary.location };
  def.upstream = now.stable.upstream;
  def.location = now.stable.location;
  def.buckets = [];
  let cleared = 0;
  for (const kind of ENTRY_KINDS) {
    const { subjects, expires } = entriesOf(doc, kind);
    for (const subject of Object.keys(subjects)) {
      if (subjects[subject] !== canary) continue;
      delete subjects[subject];
      delete expires[subject];
      cleared++;
    }
  }
  return { was, cleared, stable: { ...now.canary }, canary: { ...now.stable } };
}

/**
 * Swaps the targets back after a promote, the canary taking every bucket no other canary holds
 * (so no client changes version). Undefined when the document has no promote to undo.
 */
export function undoPromote(
  doc: RulesDocument,
  canary: string,
  now: { stable: Target; canary: Target },
): { weight: number; stable: Target; canary: Target } | undefined {
  const def = doc.canaries[canary];
  if (def === undefined || doc.stable.upstream === undefined || def.upstream === undefined) return undefined;
  doc.stable = { upstream: now.canary.upstream, location: now.canary.location };
  def.upstream = now.stable.upstream;
  def.location = now.stable.location;
  const others = doc.canaryNames
    .filter((n) => n !== canary)
    .reduce((n, name) => n + countBuckets(doc.canaries[name]!.buckets), 0);
  const weight = Math.round(((100 * BUCKETS_PER_PERCENT - others) / BUCKETS_PER_PERCENT) * 1000) / 1000;
  setWeight(doc, canary, weight);
  return { weight, stable: { ...now.canary }, canary: { ...now.stable } };
}
