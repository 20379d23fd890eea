/**
 * The rules document in memcached: reading the revision the pointer names, and writing a new
 * one by compare-and-swap. Chunks first, pointer last (a reader never sees half a revision); on
 * a conflict the edit is applied again to the newer revision, so concurrent edits all land.
 * The store may be memcached or a proxy: only get/gets/set/add/cas/delete are used.
 */
import { userInfo, hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type Pointer,
  type RulesDocument,
  chunkKey,
  copyKeys,
  emptyDocument,
  formatPointer,
  parseDocument,
  parsePointer,
  pointerKey,
} from "../../lua-src/gray/document.ts";
import { formatAddress, formatCidr, parseAddress, parseCidr } from "../../lua-src/gray/ip.ts";
import { isUserId } from "../../lua-src/gray/rules.ts";
import { type AdminStore, StoreError } from "../cli/store.ts";
import { cloneDocument, nextRevision, pruneExpired } from "./edit.ts";
import { crc32Text, encodeDocument } from "./format.ts";
import { signatureProblem } from "./signing.ts";

/**
 * A chunk no copy of which is in memcached (evicted, flushed, a lost node): the one failure a
 * reader may step past to an older revision's pointer copy. A chunk that is there but wrong, or a
 * text that is no document, is someone else's writing: the operator must look (or --force).
 */
export class MissingChunkError extends StoreError {}

export type RulesStore = Pick<AdminStore, "address" | "get" | "gets" | "set" | "add" | "cas" | "delete">;
export type RulesReader = Pick<AdminStore, "get">;

/** A document written by the CLI holds only canonical text: what nginx prints for an address, valid ids. */
export function strictCheck(kind: string, subject: string): boolean {
  if (kind === "ip") {
    const addr = parseAddress(subject);
    return addr !== undefined && formatAddress(addr) === subject;
  }
  if (kind === "range") {
    const cidr = parseCidr(subject);
    return cidr !== undefined && formatCidr(cidr) === subject;
  }
  return isUserId(subject);
}

/**
 * What the pointer names, read and checked: each chunk from the first of its copies that matches
 * the pointer's CRC-32. A chunk with no such copy is a StoreError naming its key.
 */
export async function readRevision(store: RulesReader, prefix: string, pointer: Pointer): Promise<RulesDocument> {
  const chunks: string[] = [];
  for (let i = 0; i < pointer.crcs.length; i++) {
    const key = chunkKey(prefix, pointer, i);
    let found = false;
    for (const copy of copyKeys(key)) {
      const chunk = await store.get(copy);
      if (chunk === undefined) continue;
      found = true;
      if (crc32Text(chunk) !== pointer.crcs[i]) continue;
      chunks.push(chunk);
      break;
    }
    if (chunks.length === i) {
      if (found)
        throw new StoreError(
          `rules revision ${pointer.revision}: chunk ${key} does not match its CRC-32 in the pointer`,
        );
      throw new MissingChunkError(
        `rules revision ${pointer.revision}: chunk ${key} is missing in every copy (evicted or flushed); routers that hold this revision write it back, or restore a backup with gray apply`,
      );
    }
  }
  const text = chunks.join("");
  if (text.length !== pointer.bytes)
    throw new StoreError(
      `rules revision ${pointer.revision}: ${text.length} bytes in its chunks, the pointer ${pointerKey(prefix)} says ${pointer.bytes}`,
    );
  const unsigned = signatureProblem(pointer, text);
  if (unsigned !== undefined)
    throw new StoreError(`rules revision ${pointer.revision} (${pointerKey(prefix)}): ${unsigned}`);
  const doc = parseDocument(text, strictCheck);
  if (typeof doc === "string")
    throw new StoreError(`rules revision ${pointer.revision} (${pointerKey(prefix)}) is not a valid document: ${doc}`);
  if (doc.revision !== pointer.revision)
    throw new StoreError(
      `rules revision ${pointer.revision} (${pointerKey(prefix)}): its text says revision ${doc.revision}`,
    );
  return doc;
}

/** The revision in force, and what a compare-and-swap of the pointer needs. */
export interface Current {
  doc: RulesDocument;
  /** undefined only for a forced read of a pointer that is not one. */
  pointer: Pointer | undefined;
  /** The cas token of the pointer's own key; undefined when only its copies are left (then add it). */
  cas: string | undefined;
}

function badPointer(prefix: string, text: string): StoreError {
  return new StoreError(`${pointerKey(prefix)} is not a rules pointer: ${JSON.stringify(text.slice(0, 80))}`);
}

/**
 * The pointer's copies, newest revision first; a copy that is no pointer is reported when nothing
 * better is found. The first key's cas token comes along (gets), for the swap.
 */
async function pointerCopies(
  store: RulesReader & Partial<Pick<RulesStore, "gets">>,
  prefix: string,
): Promise<{ found: boolean; texts: string[]; pointers: Pointer[]; cas: string | undefined }> {
  const [first, ...others] = copyKeys(pointerKey(prefix));
  const own = store.gets === undefined ? undefined : await store.gets(first!);
  const texts: string[] = [];
  if (store.gets === undefined) {
    const text = await store.get(first!);
    if (text !== undefined) texts.push(text);
  } else if (own !== undefined) texts.push(own.value);
  for (const key of others) {
    const text = await store.get(key);
    if (text !== undefined) texts.push(text);
  }
  const pointers = texts
    .map((t) => parsePointer(t))
    .filter((p): p is Pointer => p !== undefined)
    .sort((a, b) => b.revision - a.revision);
  return { found: texts.length > 0, texts, pointers, cas: own?.cas };
}

/**
 * The newest revision the pointer's copies name whose chunks are all there: a newer one whose
 * chunks a lost node took is stepped past (routers write them back). Undefined when there is no
 * copy. A copy that is no pointer, or a revision that is there but wrong, is refused; with
 * `force`, that counts as an empty document: the operator's way out.
 */
async function newestReadable(
  store: RulesReader & Partial<Pick<RulesStore, "gets">>,
  prefix: string,
  force: boolean,
): Promise<Current | undefined> {
  const copies = await pointerCopies(store, prefix);
  if (!copies.found) return undefined;
  const garbage = copies.texts.find((t) => parsePointer(t) === undefined);
  let failure: StoreError | undefined = garbage === undefined ? undefined : badPointer(prefix, garbage);
  for (const pointer of failure === undefined ? copies.pointers : []) {
    try {
      return { doc: await readRevision(store, prefix, pointer), pointer, cas: copies.cas };
    } catch (err) {
      if (!(err instanceof StoreError)) throw err;
      failure ??= err;
      if (!(err instanceof MissingChunkError)) break;
    }
  }
  if (force) return { doc: emptyDocument(), pointer: copies.pointers[0], cas: copies.cas };
  throw failure!;
}

/**
 * The current document (with the pointer's cas token), undefined when there is none. With `force`,
 * one that cannot be read counts as empty (the pointer still guards the swap).
 */
export function readCurrent(store: RulesStore, prefix: string, force = false): Promise<Current | undefined> {
  return newestReadable(store, prefix, force);
}

/** The current document for reading only (get), undefined when there is none. */
export async function readDocument(store: RulesReader, prefix: string): Promise<RulesDocument | undefined> {
  return (await newestReadable(store, prefix, false))?.doc;
}

/** user@host of this process, for the history. */
export function author(): string {
  let user = process.env.USER ?? "unknown";
  try {
    user = userInfo().username;
  } catch {
    // No passwd entry (a container's arbitrary uid): the environment's name will do.
  }
  return `${user}@${hostname()}`;
}

export interface EditOptions {
  /** No document: start an empty one (after waiting for a router to restore the last one). */
  init?: boolean;
  /** A document that cannot be read (missing chunk, not valid) is replaced by an empty one. */
  force?: boolean;
  /** For the history: who, and what changed. */
  by?: string;
  change: string;
  /** How long to wait for a pointer to come back after a flush (routers write their last revision back). */
  restoreWaitMs?: number;
  /** Compare-and-swap attempts before giving up. */
  maxTries?: number;
  /** Called with a warning (a cleanup that failed): the edit itself stands. */
  warn?: (message: string) => void;
}

/**
 * An edit of the document: changes `doc` (a copy of the revision read) in place and says whether
 * anything changed (nothing changed: no revision is written). Applied again on each conflict.
 */
export type Edit<R> = (doc: RulesDocument) => { changed: boolean; result: R };

export interface Edited<R> {
  result: R;
  /** The revision in force afterwards: the new one, or the one read when nothing changed. */
  revision: number;
  written: boolean;
  tries: number;
}

export const RESTORE_WAIT_MS = 3000;
const RESTORE_POLL_MS = 100;
export const MAX_TRIES = 50;

/**
 * After a flush, routers still hold the last revision and write it back (add) within about
 * cache_ttl_ms: an edit waits for that rather than turn their rules into a near-empty document.
 */
async function currentOrRestored(
  store: RulesStore,
  prefix: string,
  options: EditOptions,
): Promise<Current | undefined> {
  const deadline = Date.now() + (options.restoreWaitMs ?? RESTORE_WAIT_MS);
  for (;;) {
    const current = await readCurrent(store, prefix, options.force === true);
    if (current !== undefined || Date.now() >= deadline) return current;
    await sleep(RESTORE_POLL_MS);
  }
}

/** Deletes every copy of a revision's chunks; failures are warnings (they only cost memory until evicted). */
async function deleteChunks(store: RulesStore, prefix: string, pointer: Pointer, options: EditOptions): Promise<void> {
  for (let i = 0; i < pointer.crcs.length; i++) {
    for (const key of copyKeys(chunkKey(prefix, pointer, i))) {
      try {
        await store.delete(key);
      } catch (err) {
        if (!(err instanceof StoreError)) throw err;
        options.warn?.(`warning: old rules chunk ${key} not deleted: ${err.message}`);
      }
    }
  }
}

/**
 * The pointer's other copies follow its own key once that is swapped: a reader takes the newest
 * copy, so one left behind (its node down) is only older, never wrong. A failure is a warning.
 */
async function copyPointer(store: RulesStore, prefix: string, text: string, options: EditOptions): Promise<void> {
  for (const key of copyKeys(pointerKey(prefix)).slice(1)) {
    try {
      await store.set(key, text);
    } catch (err) {
      if (!(err instanceof StoreError)) throw err;
      options.warn?.(`warning: pointer copy ${key} not written (readers use the other copies): ${err.message}`);
    }
  }
}

/**
 * Reads the current revision, applies the edit, writes the result as a new revision: chunks with
 * set, then the pointer with cas (add when there was none). A lost race re-reads and re-applies,
 * with a short random backoff, up to maxTries times.
 */
export async function editRules<R>(
  store: RulesStore,
  prefix: string,
  edit: Edit<R>,
  options: EditOptions,
): Promise<Edited<R>> {
  const tries = options.maxTries ?? MAX_TRIES;
  const key = pointerKey(prefix);
  for (let attempt = 1; attempt <= tries; attempt++) {
    const current = await currentOrRestored(store, prefix, attempt === 1 ? options : { ...options, restoreWaitMs: 0 });
    if (current === undefined && options.init !== true)
      throw new StoreError(
        `no rules document at ${key} (none written yet, or the store was flushed and no router wrote its last revision back within ${(options.restoreWaitMs ?? RESTORE_WAIT_MS) / 1000} s): pass --init to start a new, empty document, or restore a backup with gray apply FILE`,
      );
    const doc = cloneDocument(current?.doc ?? emptyDocument());
    const { changed, result } = edit(doc);
    if (!changed) return { result, revision: current?.doc.revision ?? 0, written: false, tries: attempt };
    const now = Date.now();
    pruneExpired(doc, Math.floor(now / 1000));
    const revision = Math.max(now, (current?.doc.revision ?? 0) + 1);
    const dropped = nextRevision(doc, revision, current?.pointer, {
      at: Math.floor(now / 1000),
      by: options.by ?? author(),
      change: options.change,
    });
    const { pointer, chunks } = encodeDocument(doc);
    for (const [i, chunk] of chunks.entries())
      for (const copy of copyKeys(chunkKey(prefix, pointer, i))) await store.set(copy, chunk);
    const text = formatPointer(pointer);
    const stored =
      current?.cas === undefined ? await store.add(key, text) : (await store.cas(key, text, current.cas)) === "stored";
    // A request tried again after a proxy's SERVER_ERROR may have landed the first time: then the
    // key holds our own pointer, and "exists" is our write, not someone else's.
    const swapped = stored || (await store.get(key)) === text;
    if (swapped) {
      await copyPointer(store, prefix, text, options);
      for (const h of dropped) {
        const old = h.pointer === undefined ? undefined : parsePointer(h.pointer);
        if (old !== undefined) await deleteChunks(store, prefix, old, options);
      }
      return { result, revision, written: true, tries: attempt };
    }
    // Someone else's revision won: ours is referenced by nobody.
    await deleteChunks(store, prefix, pointer, options);
    await sleep(5 + Math.random() * Math.min(200, 10 * attempt));
  }
  throw new StoreError(
    `${key}: gave up after ${tries} tries: other writers changed the rules document each time between reading and writing it`,
  );
}
