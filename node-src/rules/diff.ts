/**
 * What differs between two documents, one line per change, ignoring revision and history: what
 * `gray diff FILE` prints, and how `apply` and `rollback` know whether there is anything to write.
 */
import { type RulesDocument, type Targets, formatBuckets, weightOf } from "../../lua-src/gray/document.ts";
import { ENTRY_KINDS, entriesOf } from "./edit.ts";

const shown = (v: string | undefined) => v ?? "-";
const expiry = (at: number | undefined) => (at === undefined ? "never" : new Date(at * 1000).toISOString());

function targetChanges(what: string, a: Targets, b: Targets): string[] {
  const out: string[] = [];
  for (const field of ["upstream", "location"] as const)
    if (a[field] !== b[field]) out.push(`~ ${what} ${field} ${shown(a[field])} -> ${shown(b[field])}`);
  return out;
}

/** "+ …" added, "- …" removed, "~ …" changed; empty when the rules are the same. */
export function diffDocuments(a: RulesDocument, b: RulesDocument): string[] {
  const out = targetChanges("stable", a.stable, b.stable);
  for (const name of b.canaryNames) {
    const was = a.canaries[name];
    const now = b.canaries[name]!;
    if (was === undefined) {
      out.push(`+ canary ${name} weight ${weightOf(now)} %`, ...targetChanges(`canary ${name}`, {} as Targets, now));
      continue;
    }
    if (weightOf(was) !== weightOf(now)) out.push(`~ canary ${name} weight ${weightOf(was)} % -> ${weightOf(now)} %`);
    else if (formatBuckets(was.buckets) !== formatBuckets(now.buckets))
      out.push(`~ canary ${name} buckets ${formatBuckets(was.buckets)} -> ${formatBuckets(now.buckets)}`);
    out.push(...targetChanges(`canary ${name}`, was, now));
  }
  for (const name of a.canaryNames) if (b.canaries[name] === undefined) out.push(`- canary ${name}`);
  for (const kind of ENTRY_KINDS) {
    const before = entriesOf(a, kind);
    const after = entriesOf(b, kind);
    for (const s in after.subjects) {
      const canary = after.subjects[s]!;
      const until = after.expires[s];
      const old = before.subjects[s];
      if (old === undefined)
        out.push(`+ ${kind} ${s} ${canary}${until === undefined ? "" : ` until ${expiry(until)}`}`);
      else if (old !== canary || before.expires[s] !== until)
        out.push(`~ ${kind} ${s} ${old} -> ${canary}, expires ${expiry(before.expires[s])} -> ${expiry(until)}`);
    }
    for (const s in before.subjects)
      if (after.subjects[s] === undefined) out.push(`- ${kind} ${s} ${before.subjects[s]}`);
  }
  return out;
}
