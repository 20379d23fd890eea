/** `gray list`: the rules document, per canary: weight, ranges, IPs and users with their expiries. */
import type { RulesDocument } from "../../../lua-src/gray/document.ts";
import { weightOf } from "../../../lua-src/gray/document.ts";
import { ENTRY_KINDS, type EntryKind, entriesOf } from "../../rules/edit.ts";
import { type Command, noArgs } from "../command.ts";
import { noDocument, readRules } from "../rules-command.ts";

export interface ListedEntry {
  subject: string;
  /** Unix seconds, null for never. */
  expires: number | null;
}

export interface ListedCanary {
  weight: number;
  ranges: ListedEntry[];
  ips: ListedEntry[];
  users: ListedEntry[];
}

/** What `gray list --json` prints. */
export interface Listing {
  revision: number | null;
  canaries: Record<string, ListedCanary>;
}

const GROUP: Record<EntryKind, "ips" | "ranges" | "users"> = { ip: "ips", range: "ranges", user: "users" };

/** Seed keys are `set <ip> ...` keys; no store command lists them (and no proxy forwards memcached's metadump). */
const SEED_NOTE = "per-IP seed keys (read by routers with ip_keys = true) are not listed";

export function listing(doc: RulesDocument): Listing {
  const canaries: Record<string, ListedCanary> = {};
  for (const name of doc.canaryNames)
    canaries[name] = { weight: weightOf(doc.canaries[name]!), ranges: [], ips: [], users: [] };
  for (const kind of ENTRY_KINDS) {
    const { subjects, expires } = entriesOf(doc, kind);
    for (const subject in subjects)
      canaries[subjects[subject]!]![GROUP[kind]].push({ subject, expires: expires[subject] ?? null });
  }
  return { revision: doc.revision, canaries };
}

function render(l: Listing): string {
  const now = Date.now() / 1000;
  const until = (e: ListedEntry) =>
    e.expires === null ? "" : `  (expires in ${Math.max(0, Math.round(e.expires - now))} s)`;
  const lines = [`revision ${l.revision}`];
  for (const [name, c] of Object.entries(l.canaries)) {
    lines.push(`canary ${name}  weight ${c.weight} %`);
    for (const group of ["ranges", "ips", "users"] as const) {
      lines.push(`  ${group.padEnd(6)} ${c[group].length ? "" : "(none)"}`.trimEnd());
      for (const e of c[group]) lines.push(`    ${e.subject}${until(e)}`);
    }
  }
  lines.push(SEED_NOTE);
  return lines.join("\n");
}

export const list: Command = {
  name: "list",
  usage: "gray list",
  summary: "show the rules document: per canary its weight, ranges, IPs and users, with expiries",
  options: {},
  prepare: (ctx) => {
    noArgs(ctx);
    return async () => {
      const doc = await readRules(ctx);
      if (doc === undefined)
        return { text: `${noDocument(ctx)}\n${SEED_NOTE}`, data: { revision: null, canaries: {} } satisfies Listing };
      const l = listing(doc);
      return { text: render(l), data: l };
    };
  },
};
