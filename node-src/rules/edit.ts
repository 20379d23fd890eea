/**
 * Edits of a rules document, pure: the CLI applies one to the revision it read and writes the
 * result by compare-and-swap (revisions.ts); on a conflict it applies the same edit again to the
 * newer revision, so an edit must be a function of the document, never of an earlier read.
 */
import {
  BUCKETS,
  type CanaryDef,
  HISTORY_KEEP,
  type Pointer,
  type RulesDocument,
  formatPointer,
  isCanaryName,
  weightOf,
} from "../../lua-src/gray/document.ts";

/** Input that the document makes wrong (a weight that would take the total over 100 %): exit 2, nothing written. */
export class RulesEditError extends Error {}

export type EntryKind = "ip" | "range" | "user";
export const ENTRY_KINDS: readonly EntryKind[] = ["ip", "range", "user"];

/** One percent of the traffic, in buckets; a weight finer than one bucket cannot be routed. */
export const BUCKETS_PER_PERCENT = BUCKETS / 100;

export function cloneDocument(doc: RulesDocument): RulesDocument {
  const canaries: Record<string, CanaryDef> = {};
  for (const name of doc.canaryNames)
    canaries[name] = { ...doc.canaries[name]!, buckets: [...doc.canaries[name]!.buckets] };
  return {
    revision: doc.revision,
    stable: { ...doc.stable },
    canaries,
    canaryNames: [...doc.canaryNames],
    ips: { ...doc.ips },
    ipExpires: { ...doc.ipExpires },
    ranges: { ...doc.ranges },
    rangeExpires: { ...doc.rangeExpires },
    users: { ...doc.users },
    userExpires: { ...doc.userExpires },
    history: doc.history.map((h) => ({ ...h })),
    entries: doc.entries,
  };
}

/** The subject → canary map of one kind and its expiries. */
export function entriesOf(
  doc: RulesDocument,
  kind: EntryKind,
): { subjects: Record<string, string>; expires: Record<string, number> } {
  if (kind === "ip") return { subjects: doc.ips, expires: doc.ipExpires };
  if (kind === "range") return { subjects: doc.ranges, expires: doc.rangeExpires };
  return { subjects: doc.users, expires: doc.userExpires };
}

export function checkCanaryName(name: string): string {
  if (!isCanaryName(name))
    throw new RulesEditError(
      `not a canary name (1-32 lowercase letters, digits, - and _, not "stable"): ${JSON.stringify(name)}`,
    );
  return name;
}

/** Declares the canary (its line) on first use: entries may only name declared canaries. */
export function ensureCanary(doc: RulesDocument, name: string): CanaryDef {
  let def = doc.canaries[checkCanaryName(name)];
  if (def === undefined) {
    def = { buckets: [], upstream: undefined, location: undefined };
    doc.canaries[name] = def;
    doc.canaryNames.push(name);
  }
  return def;
}

/** Flags a subject for a canary until `expires` (Unix s, 0 for never); true when that changed anything. */
export function flag(doc: RulesDocument, kind: EntryKind, subject: string, canary: string, expires: number): boolean {
  ensureCanary(doc, canary);
  const { subjects, expires: until } = entriesOf(doc, kind);
  const changed = subjects[subject] !== canary || (until[subject] ?? 0) !== expires;
  subjects[subject] = canary;
  if (expires > 0) until[subject] = expires;
  else delete until[subject];
  return changed;
}

/** What unflag found: the subject flagged (and now removed), absent, or flagged for another canary (left alone). */
export type Unflagged = { removed: true; canary: string } | { removed: false; canary: string | undefined };

/** Removes a subject's entry; with `only`, only when it names that canary. */
export function unflag(doc: RulesDocument, kind: EntryKind, subject: string, only?: string): Unflagged {
  const { subjects, expires } = entriesOf(doc, kind);
  const canary = subjects[subject];
  if (canary === undefined || (only !== undefined && canary !== only)) return { removed: false, canary };
  delete subjects[subject];
  delete expires[subject];
  return { removed: true, canary };
}

/** Drops entries whose expiry has passed (routers ignore them already); how many. */
export function pruneExpired(doc: RulesDocument, nowSeconds: number): number {
  let pruned = 0;
  for (const kind of ENTRY_KINDS) {
    const { subjects, expires } = entriesOf(doc, kind);
    for (const subject in expires) {
      if (expires[subject]! > nowSeconds) continue;
      delete subjects[subject];
      delete expires[subject];
      pruned++;
    }
  }
  return pruned;
}

/** A weight in percent as buckets; finer than 0.001 % (one bucket) or outside 0..100 is refused. */
export function percentToBuckets(percent: number): number {
  const buckets = Math.round(percent * BUCKETS_PER_PERCENT);
  if (!(percent >= 0 && percent <= 100) || Math.abs(percent * BUCKETS_PER_PERCENT - buckets) > 1e-6)
    throw new RulesEditError(`a weight is a percentage from 0 to 100 in steps of 0.001: ${percent}`);
  return buckets;
}

/** How many buckets a [start, count, ...] list holds. */
export function countBuckets(buckets: number[]): number {
  let n = 0;
  for (let i = 1; i < buckets.length; i += 2) n += buckets[i]!;
  return n;
}

/** The buckets no canary owns, as [start, end) intervals, lowest first. */
function freeIntervals(doc: RulesDocument): [number, number][] {
  const taken: [number, number][] = [];
  for (const name of doc.canaryNames) {
    const b = doc.canaries[name]!.buckets;
    for (let i = 0; i < b.length; i += 2) taken.push([b[i]!, b[i]! + b[i + 1]!]);
  }
  taken.sort((a, b) => a[0] - b[0]);
  const free: [number, number][] = [];
  let at = 0;
  for (const [start, end] of taken) {
    if (start > at) free.push([at, start]);
    at = Math.max(at, end);
  }
  if (at < BUCKETS) free.push([at, BUCKETS]);
  return free;
}

/** Appends [start, start+count) to the acquisition list, merged with the last run when it continues it. */
function take(buckets: number[], start: number, count: number): void {
  const n = buckets.length;
  if (n > 0 && buckets[n - 2]! + buckets[n - 1]! === start) buckets[n - 1] = buckets[n - 1]! + count;
  else buckets.push(start, count);
}

/**
 * Sets a canary's weight by the buckets it owns: raising takes free buckets lowest first (so a
 * canary grown from 0 alone owns [0, w·1000), the split a 0.1 weight made), lowering gives back
 * the most recently taken. A client in a canary stays there while its weight grows, and no
 * client ever moves from one canary to another. All canaries together hold at most 100 %.
 */
export function setWeight(doc: RulesDocument, canary: string, percent: number): { was: number; now: number } {
  const want = percentToBuckets(percent);
  const def = ensureCanary(doc, canary);
  const was = weightOf(def);
  let have = countBuckets(def.buckets);
  if (want > have) {
    const others = doc.canaryNames
      .filter((n) => n !== canary)
      .reduce((s, n) => s + countBuckets(doc.canaries[n]!.buckets), 0);
    if (others + want > BUCKETS)
      throw new RulesEditError(
        `weights of all canaries together may not exceed 100 %: ${canary} ${percent} % with the others' ${(others / BUCKETS_PER_PERCENT).toFixed(3).replace(/\.?0+$/, "")} %`,
      );
    for (const [start, end] of freeIntervals(doc)) {
      if (have === want) break;
      const count = Math.min(end - start, want - have);
      take(def.buckets, start, count);
      have += count;
    }
  }
  while (have > want) {
    const n = def.buckets.length;
    const give = Math.min(def.buckets[n - 1]!, have - want);
    if (give === def.buckets[n - 1]) def.buckets.splice(n - 2, 2);
    else def.buckets[n - 1] = def.buckets[n - 1]! - give;
    have -= give;
  }
  return { was, now: weightOf(def) };
}

/** Gives `doc` the rules of `source` (targets, canaries, entries), keeping its own revision and history. */
export function replaceRules(doc: RulesDocument, source: RulesDocument): void {
  const copy = cloneDocument(source);
  doc.stable = copy.stable;
  doc.canaries = copy.canaries;
  doc.canaryNames = copy.canaryNames;
  for (const kind of ENTRY_KINDS) {
    const from = entriesOf(copy, kind);
    const to = entriesOf(doc, kind);
    for (const s in to.subjects) delete to.subjects[s];
    for (const s in to.expires) delete to.expires[s];
    Object.assign(to.subjects, from.subjects);
    Object.assign(to.expires, from.expires);
  }
}

/** Every declared canary's weight in percent. */
export function weights(doc: RulesDocument): Record<string, number> {
  const out: Record<string, number> = {};
  for (const name of doc.canaryNames) out[name] = weightOf(doc.canaries[name]!);
  return out;
}

export interface Authorship {
  /** Unix seconds. */
  at: number;
  by: string;
  change: string;
}

/**
 * Makes `doc` (an edited copy of the revision `previous` points at) the next revision: its
 * number, and its history line in front; the previous revision's line gets its pointer (to roll
 * back to it). Returns the history lines that fell off (their chunks are to be deleted).
 */
export function nextRevision(
  doc: RulesDocument,
  revision: number,
  previous: Pointer | undefined,
  who: Authorship,
): RulesDocument["history"] {
  if (previous !== undefined && doc.history.length > 0 && doc.history[0]!.revision === previous.revision)
    doc.history[0]!.pointer = formatPointer(previous);
  doc.revision = revision;
  doc.history.unshift({ revision, at: who.at, by: who.by, pointer: undefined, change: who.change });
  return doc.history.splice(HISTORY_KEEP);
}
