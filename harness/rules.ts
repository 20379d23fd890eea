/**
 * Rules written into the document the way the CLI writes them (node-src/rules), without a CLI
 * process: for router tests that need a weight, flagged IPs, ranges or users in place. Each call
 * is one revision; the document is started when there is none (a test's flushed store).
 */
import {
  DEFAULT_CANARY,
  type RulesDocument,
  chunkKey,
  copyKeys,
  emptyDocument,
  formatPointer,
  pointerKey,
} from "../lua-src/gray/document.ts";
import { cloneDocument, flag, replaceRules, setWeight as setCanaryWeight, unflag } from "../node-src/rules/edit.ts";
import { encodeDocument } from "../node-src/rules/format.ts";
import { type Edited, editRules, readCurrent, readDocument } from "../node-src/rules/revisions.ts";
import { withStore } from "../node-src/cli/store.ts";

/** One revision with the edit; no wait for a router to restore a flushed document (tests flush on purpose). */
export function editDocument(
  address: string,
  prefix: string,
  change: string,
  edit: (doc: RulesDocument) => void,
  force = false,
): Promise<Edited<undefined>> {
  return withStore(address, (store) =>
    editRules(
      store,
      prefix,
      (doc) => {
        edit(doc);
        return { changed: true, result: undefined };
      },
      { change: `test: ${change}`, by: "harness@test", init: true, force, restoreWaitMs: 0 },
    ),
  );
}

/**
 * Writes the edited document as the next revision just as the edit left it: no expired entry
 * pruned, no history line, no compare-and-swap (the pointer's copies are set). For what readers make of a
 * document the CLI would not write, such as entries already expired. Returns the revision.
 */
export function writeDocumentAsIs(
  address: string,
  prefix: string,
  edit: (doc: RulesDocument) => void,
): Promise<number> {
  return withStore(address, async (store) => {
    const current = await readCurrent(store, prefix);
    const doc = cloneDocument(current?.doc ?? emptyDocument());
    edit(doc);
    doc.revision = Math.max(Date.now(), (current?.doc.revision ?? 0) + 1);
    const { pointer, chunks } = encodeDocument(doc);
    // Every copy, as the CLI writes them: a copy left out would be put back by the routers.
    for (const [i, chunk] of chunks.entries())
      for (const key of copyKeys(chunkKey(prefix, pointer, i))) await store.set(key, chunk);
    for (const key of copyKeys(pointerKey(prefix))) await store.set(key, formatPointer(pointer));
    return doc.revision;
  });
}

/** The document as routers would load it now (undefined when there is none). */
export function readRules(address: string, prefix = ""): Promise<RulesDocument | undefined> {
  return withStore(address, (store) => readDocument(store, prefix));
}

export async function setWeight(address: string, prefix: string, percent: number, canary = DEFAULT_CANARY) {
  await editDocument(address, prefix, `weight ${percent} --canary ${canary}`, (doc) => {
    setCanaryWeight(doc, canary, percent);
  });
}

/** Entries expire at `expires` (Unix seconds; 0, the default, for never). */
export interface FlagOptions {
  canary?: string;
  expires?: number;
}

async function flagAll(
  address: string,
  prefix: string,
  kind: "ip" | "range" | "user",
  subjects: string[],
  o: FlagOptions,
) {
  await editDocument(address, prefix, `${kind} ${subjects.join(" ")}`, (doc) => {
    for (const s of subjects) flag(doc, kind, s, o.canary ?? DEFAULT_CANARY, o.expires ?? 0);
  });
}

/** IPs as nginx prints them (e.g. "2001:db8::1"). */
export function flagIps(address: string, prefix: string, ips: string[], o: FlagOptions = {}) {
  return flagAll(address, prefix, "ip", ips, o);
}

/** The canary's ranges become exactly these CIDRs (as nginx prints them, e.g. "10.0.0.0/8"), as a 0.1 range list was. */
export async function setRanges(address: string, prefix: string, cidrs: string[], o: FlagOptions = {}) {
  const canary = o.canary ?? DEFAULT_CANARY;
  await editDocument(address, prefix, `ranges ${cidrs.join(" ")} --canary ${canary}`, (doc) => {
    for (const cidr in doc.ranges) if (doc.ranges[cidr] === canary) unflag(doc, "range", cidr);
    for (const cidr of cidrs) flag(doc, "range", cidr, canary, o.expires ?? 0);
  });
}

export function flagUsers(address: string, prefix: string, ids: string[], o: FlagOptions = {}) {
  return flagAll(address, prefix, "user", ids, o);
}

/**
 * A new revision with no rules at all, newer than any a router holds: how a test starts clean,
 * since after a flush the routers write their last revision back (by design).
 */
export async function clearRules(address: string, prefix = ""): Promise<number> {
  // Forced: a test may have left a pointer the CLI refuses to build on (a missing chunk, on purpose).
  const edited = await editDocument(address, prefix, "clear", (doc) => replaceRules(doc, emptyDocument()), true);
  return edited.revision;
}
