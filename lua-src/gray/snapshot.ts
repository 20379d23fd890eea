/**
 * The rules document in memory: the request path reads Lua tables and never waits on memcached.
 *
 * Each worker holds the revision it loaded as plain tables (a lookup is a table index; nothing is
 * copied or decoded per request) and checks the pointer from a timer every cache_ttl_ms. A new
 * revision is fetched, each chunk checked against the pointer's CRC-32, parsed in slices with
 * ngx.sleep(0) between them (so requests keep flowing while 100,000 entries load) and swapped in
 * whole. The text is also kept in the shared dict: a reload's new workers, and a worker's first
 * request, start from it without memcached; with nothing there, a worker's first request loads from
 * memcached while that worker's other requests wait for it (bounded).
 *
 * A router never drops to fewer rules by accident: store down, pointer gone, chunks missing, an
 * unreadable or oversized text — it keeps its revision, reports it in /gray/status and in a
 * rate-limited warning, and writes its revision back when memcached lost it (add: the first
 * router to do so wins, the others change nothing).
 */
import {
  COPIES,
  DocumentReader,
  type Pointer,
  type RulesDocument,
  type RulesView,
  STABLE,
  buildView,
  chunkKey,
  copyKeys,
  newestPointer,
  parsePointer,
  pointerKey,
  signedText,
} from "./document.ts";
import { STORE_ERROR_COUNTER, count } from "./counters.ts";
import type { MemcachedOptions, RouterOptions } from "./options.ts";
import { type DocumentStatus, MAX_RELEASE_BYTES, releaseKey } from "./status.ts";
import { fetchMany, replaceStale, storeBack, touchKeys } from "./store.ts";

const ngx_now = ngx.now;
const ngx_time = ngx.time;
const ngx_log = ngx.log;

const BACKGROUND_TIMEOUT_MS = 1000;

/** Lines parsed between two yields: about 1.5 ms of work, measured with 100,000-entry documents. */
const LINES_PER_SLICE = 1000;
/**
 * A yield: 0 would do on OpenResty, but Debian's nginx lacks the patch that makes ngx.sleep(0)
 * cheap and warns on every call.
 */
const YIELD_S = 0.001;
const WARN_INTERVAL_S = 5;
/** How often a worker touches its revision's chunk copies: finds gone ones, and keeps them warm in memcached's LRU. */
const TOUCH_INTERVAL_S = 10;
/** The machine-wide lock of a write-back, so one worker per machine does it. */
const HEAL_LOCK = "gray rules healing";
const HEAL_LOCK_S = 5;
/** The shared dict's copy: the pointer text, and chunks under keys naming their revision. */
const DICT_POINTER = "gray rules pointer";

function dictChunkKey(p: Pointer, index: number): string {
  return `gray rules ${p.revision}:${p.nonce} ${index}`;
}

/** Where a route hands requests on: a location for route(), an upstream {} block for route_upstream(). */
export interface RouteTarget {
  location: string;
  upstream: string;
}

interface Loaded {
  pointer: Pointer;
  pointerText: string;
  chunks: string[];
  doc: RulesDocument;
  /** ngx.now() when it was swapped in. */
  at: number;
  source: "memcached" | "shared dict";
  ips: number;
  users: number;
  ranges: number;
}

let options!: RouterOptions;
let connect!: MemcachedConnectOptions;
/**
 * The store as the rules' loads talk to it: the configured timeout for a worker's first load, which
 * requests wait on; at least BACKGROUND_TIMEOUT_MS for the timer's, which nobody waits on, so a
 * store slowed by load is not taken for a failing one.
 */
let store!: MemcachedOptions;
let firstLoadStore!: MemcachedOptions;
let backgroundStore!: MemcachedOptions;
let dict: SharedDict | undefined;
/** The pointer's copies' keys. */
let pointerNames: string[] = [];
/** The running release's key (`gray release` keeps its state there), read with the pointer's copies. */
let releaseName = "";
/** What the timer's one get asks for: the pointer's copies and the release key. */
let checkNames: string[] = [];
/**
 * The release key as this worker last read it (kept when memcached fails, like the rules): its
 * text when it fits MAX_RELEASE_BYTES, and its size. Shown by /gray/status, never used to route.
 */
let releaseText: string | undefined;
let releaseBytes = 0;
/**
 * What decides, swapped whole: a request reads it once and is sent where the revision that
 * decided it says, even if a newer one (a promote) is swapped in while it waits on a seed key.
 */
export interface InForce {
  view: RulesView;
  /** Where each route ("stable", each canary) hands requests on. */
  targets: Record<string, RouteTarget>;
}

let inForce!: InForce;
let loaded: Loaded | undefined;
let lastError: string | undefined;
let missingSince: number | undefined;
let checkedAt: number | undefined;
/** This worker has started its timer and its first load. */
let started = false;
/** A load runs in this worker (its first, or the timer's). */
let loading = false;
/** The worker's first load runs (a request's): the worker's other requests wait for it, bounded. */
let firstLoading = false;
let nextTouchAt = 0;
const nextWarnAt: Partial<Record<ProblemKind, number>> = {};
let unroutableWarned: Record<string, boolean> = {};

/** The canaries this router can send to: its options name them. */
let routable: string[] = [];

function viewOf(doc: RulesDocument | undefined): RulesView {
  return buildView(doc, options.ranges, options.weight, routable, ngx_time());
}

/** A target the document names must be one this conf knows, so the store cannot send requests anywhere else. */
function knownTarget(configured: RouteTarget[], location: string | undefined, upstream: string | undefined): boolean {
  const locationKnown = location === undefined || configured.some((t) => t.location === location);
  return locationKnown && (upstream === undefined || configured.some((t) => t.upstream === upstream));
}

/** What decides under this document (or none): its view and its targets. */
function inForceOf(doc: RulesDocument | undefined): InForce {
  const rules: InForce = { view: viewOf(doc), targets: {} };
  buildTargets(rules, doc);
  return rules;
}

/** Targets from the options, with the document's (a promote swaps them) where they name known ones. */
function buildTargets(rules: InForce, doc: RulesDocument | undefined): void {
  const { targets } = rules;
  const configured: Record<string, RouteTarget> = {};
  configured[STABLE] = { location: options.stable_location, upstream: options.stable_upstream };
  for (const name in options.canaries) configured[name] = options.canaries[name]!;
  const all: RouteTarget[] = [];
  for (const name in configured) all.push(configured[name]!);
  for (const name in configured) {
    const base = configured[name]!;
    const set = doc === undefined ? undefined : name === STABLE ? doc.stable : doc.canaries[name];
    const location = set?.location;
    const upstream = set?.upstream;
    const known = set !== undefined && knownTarget(all, location, upstream);
    targets[name] = {
      location: known && location !== undefined ? location : base.location,
      upstream: known && upstream !== undefined ? upstream : base.upstream,
    };
  }
  if (doc === undefined) return;
  for (const name of doc.canaryNames) {
    if (options.canaries[name] !== undefined || unroutableWarned[name]) continue;
    unroutableWarned[name] = true;
    ngx_log(
      ngx.WARN,
      `gray.router: the rules document names canary "${name}", which this router's canaries option does not: its entries stay on stable here`,
    );
  }
}

export function installRules(parsed: RouterOptions, zone: SharedDict | undefined): void {
  options = parsed;
  // Its own pool of one: the checks reuse one connection, so the store sees no new connection
  // (and the host no TIME_WAIT socket) per check, and never take one of the request path's.
  connect = { pool: `gray-rules ${parsed.memcached.host}:${parsed.memcached.port}`, pool_size: 1 };
  firstLoadStore = parsed.memcached;
  backgroundStore = {
    ...parsed.memcached,
    timeout_ms: Math.max(parsed.memcached.timeout_ms, BACKGROUND_TIMEOUT_MS),
  };
  store = firstLoadStore;
  dict = zone;
  pointerNames = copyKeys(pointerKey(parsed.key_prefix));
  releaseName = releaseKey(parsed.key_prefix);
  checkNames = pointerNames.map((key) => key);
  checkNames.push(releaseName);
  releaseText = undefined;
  releaseBytes = 0;
  loaded = undefined;
  lastError = undefined;
  missingSince = undefined;
  checkedAt = undefined;
  started = false;
  loading = false;
  firstLoading = false;
  unroutableWarned = {};
  routable = [];
  for (const name in parsed.canaries) routable.push(name);
  inForce = inForceOf(undefined);
}

/**
 * What kind of thing is wrong: each kind is warned at most once every few seconds, whatever its
 * text (a store answering garbage varies it with every reply) and however the kinds alternate (a
 * garbage store makes a pointer look gone, then a write-back fail, then a read fail, ...).
 */
type ProblemKind = "store" | "gone" | "older" | "refused" | "unsigned" | "write-back" | "dict" | "bug";

/** Something is wrong with the store's copy: remembered for /gray/status, warned at most every few seconds per kind. */
function problem(kind: ProblemKind, message: string): void {
  const now = ngx_now();
  lastError = message;
  if (now < (nextWarnAt[kind] ?? 0)) return;
  nextWarnAt[kind] = now + WARN_INTERVAL_S;
  ngx_log(ngx.WARN, "gray.router: ", message);
}

/** memcached failed: counted with the store's errors, and reported. */
function storeProblem(message: string): void {
  count(STORE_ERROR_COUNTER.refresh, 1);
  problem("store", message);
}

function keeping(): string {
  return loaded === undefined
    ? "no revision loaded yet, so only the conf's rules apply"
    : `keeping revision ${loaded.pointer.revision}`;
}

/** LuaJIT's table.new: a table with room for `hash` keys, allocated once. */
const tableNew = require("table.new") as (this: void, array: number, hash: number) => Record<string, string>;

/** The shortest entry line ("ip 1 c 0\n") is 9 bytes: no text of N bytes holds more than N / 9 entries. */
const MIN_ENTRY_BYTES = 9;
/** The most entries the text being parsed can hold: a hostile count in its first line sizes no table past it. */
let presizeCap = 0;

function sized(this: void, entries: number): Record<string, string> {
  return tableNew(0, Math.min(entries, presizeCap));
}

/** Parses the chunks, yielding between slices; the document or why it was refused. */
function parse(chunks: string[]): RulesDocument | string {
  let bytes = 0;
  for (const chunk of chunks) bytes += chunk.length;
  presizeCap = Math.floor(bytes / MIN_ENTRY_BYTES);
  const reader = new DocumentReader(undefined, sized);
  for (const chunk of chunks) {
    reader.feed(chunk);
    while (reader.step(LINES_PER_SLICE)) ngx.sleep(YIELD_S);
    if (reader.failure !== undefined) break;
    ngx.sleep(YIELD_S);
  }
  return reader.finish() ?? reader.failure!;
}

/** The chunk is the one the pointer names (its CRC-32); a yield follows each check. */
function matches(p: Pointer, index: number, chunk: string | undefined): boolean {
  if (chunk === undefined) return false;
  const same = ngx.crc32_long(chunk) === p.crcs[index];
  ngx.sleep(YIELD_S);
  return same;
}

/** Every chunk found and matching (`chunks` holds only matching ones), the whole as large as the pointer says. */
function checkChunks(p: Pointer, chunks: (string | undefined)[], where: (i: number) => string): string | undefined {
  let bytes = 0;
  for (let i = 0; i < p.crcs.length; i++) {
    const chunk = chunks[i];
    if (chunk === undefined) return `chunk ${where(i)} is missing, or no copy of it matches the pointer's checksum`;
    bytes += chunk.length;
  }
  return bytes === p.bytes ? undefined : `its chunks hold ${bytes} bytes, the pointer says ${p.bytes}`;
}

/** The revision carries the HMAC of its text under the key: checked once per revision, never per request. */
function signedBy(key: string, p: Pointer, chunks: string[]): boolean {
  if (p.signature === undefined) return false;
  return ngx.encode_base64(ngx.hmac_sha1(key, signedText(p, chunks.join("")))) === p.signature;
}

/** Each chunk's copies' keys, the chunk's own key first. */
function chunkCopyKeys(p: Pointer): string[][] {
  return p.crcs.map((_, i) => copyKeys(chunkKey(options.key_prefix, p, i)));
}

/**
 * Each chunk from memcached: its first copy, and the next copy only for chunks whose copy so far
 * was missing or did not match (a lost node, an eviction), so a healthy pool costs one round trip.
 */
function fetchChunks(p: Pointer): LuaMultiReturn<[(string | undefined)[] | undefined, string | undefined]> {
  const keys = chunkCopyKeys(p);
  const chunks: (string | undefined)[] = keys.map(() => undefined);
  for (let copy = 0; copy < COPIES; copy++) {
    const wanted: number[] = [];
    for (let i = 0; i < keys.length; i++) if (chunks[i] === undefined) wanted.push(i);
    if (wanted.length === 0) break;
    const [values, failure] = fetchMany(
      store,
      connect,
      wanted.map((i) => keys[i]![copy]!),
    );
    if (values === undefined) return $multi(undefined, failure);
    for (const i of wanted) {
      const chunk = values.get(keys[i]![copy]!);
      if (matches(p, i, chunk)) chunks[i] = chunk;
    }
  }
  return $multi(chunks, undefined);
}

function size(record: Record<string, unknown>): number {
  let n = 0;
  for (const _ in record) n++;
  return n;
}

function adopt(p: Pointer, text: string, chunks: string[], doc: RulesDocument, source: Loaded["source"]): void {
  loaded = {
    pointer: p,
    pointerText: text,
    chunks,
    doc,
    at: ngx_now(),
    source,
    ips: size(doc.ips),
    users: size(doc.users),
    ranges: size(doc.ranges),
  };
  inForce = inForceOf(doc);
  lastError = undefined;
  missingSince = undefined;
  nextTouchAt = ngx_now() + TOUCH_INTERVAL_S;
}

/** Keeps the loaded text in the shared dict for a reload's workers; the first worker to load a revision writes it. */
function saveCopy(): void {
  if (dict === undefined || loaded === undefined) return;
  const [current] = dict.get(DICT_POINTER);
  if (current === loaded.pointerText) return;
  const old = typeof current === "string" ? parsePointer(current) : undefined;
  const p = loaded.pointer;
  // Another worker saved a newer revision while this one loaded: that copy stays.
  if (old !== undefined && old.revision > p.revision) return;
  for (let i = 0; i < loaded.chunks.length; i++) {
    const [ok, why] = dict.safe_set(dictChunkKey(p, i), loaded.chunks[i]!);
    if (!ok) {
      problem(
        "dict",
        `lua_shared_dict ${options.cache!.dict} has no room for a copy of revision ${p.revision} (${p.bytes} bytes: ${why}), so a reload's workers will load it from memcached; enlarge the zone`,
      );
      return;
    }
  }
  dict.safe_set(DICT_POINTER, loaded.pointerText);
  if (old !== undefined) for (let i = 0; i < old.crcs.length; i++) dict.delete(dictChunkKey(old, i));
}

/**
 * The shared dict's copy, when there is one that checks out and is newer than `newerThan`: a
 * worker's first load, and on each check a revision another worker of this nginx already loaded
 * (taken without a round trip, and also while the store is unreachable).
 */
function loadCopy(newerThan = -1): boolean {
  if (dict === undefined) return false;
  const [text] = dict.get(DICT_POINTER);
  const p = typeof text === "string" ? parsePointer(text) : undefined;
  if (p === undefined || p.revision <= newerThan) return false;
  const chunks: (string | undefined)[] = [];
  for (let i = 0; i < p.crcs.length; i++) {
    const [chunk] = dict.get(dictChunkKey(p, i));
    chunks.push(typeof chunk === "string" && matches(p, i, chunk) ? chunk : undefined);
  }
  if (checkChunks(p, chunks, (i) => `${i}`) !== undefined) return false;
  // Saved under another conf perhaps (a reload that added rules_key_file): checked like memcached's.
  if (options.rules_key !== undefined && !signedBy(options.rules_key, p, chunks as string[])) return false;
  const doc = parse(chunks as string[]);
  if (typeof doc === "string") return false;
  adopt(p, text as string, chunks as string[], doc, "shared dict");
  return true;
}

/**
 * Writes what memcached lost of the loaded revision back: chunk copies with set (their keys name
 * the revision: the same bytes), pointer copies with add (of several routers, the first wins, and
 * a newer revision written meanwhile is never replaced). One worker per machine at a time.
 */
function writeBack(why: string, chunkKeys: string[], pointerKeys: string[], lock = true): void {
  if (loaded === undefined) return;
  if (lock && dict !== undefined && !dict.add(HEAL_LOCK, true, HEAL_LOCK_S)[0]) return;
  const p = loaded.pointer;
  const byKey: Record<string, string> = {};
  chunkCopyKeys(p).forEach((copies, i) => {
    for (const key of copies) byKey[key] = loaded!.chunks[i]!;
  });
  const sets: [string, string][] = chunkKeys.map((key) => [key, byKey[key]!]);
  const adds: [string, string][] = pointerKeys.map((key) => [key, loaded!.pointerText]);
  const [, failure] = storeBack(store, connect, sets, adds);
  if (failure !== undefined) problem("write-back", `writing revision ${p.revision} back (${why}) failed: ${failure}`);
  else ngx_log(ngx.NOTICE, `gray.router: wrote revision ${p.revision} back to memcached (${why})`);
}

/**
 * Every copy of the pointer holds an older revision than the loaded one (a node came back with
 * old keys, ours were lost): the chunks go back, then each pointer copy still holding what was
 * read is swapped for ours by compare-and-swap, so a revision written meanwhile is never replaced.
 */
function writeBackOver(stale: string, texts: (string | undefined)[]): void {
  if (loaded === undefined) return;
  if (dict !== undefined && !dict.add(HEAL_LOCK, true, HEAL_LOCK_S)[0]) return;
  const all: string[] = [];
  for (const copies of chunkCopyKeys(loaded.pointer)) for (const key of copies) all.push(key);
  writeBack(
    "an older revision in memcached",
    all,
    pointerNames.filter((_, i) => texts[i] === undefined),
    false,
  );
  const [, failure] = replaceStale(store, connect, pointerNames, stale, loaded.pointerText);
  if (failure !== undefined)
    problem("write-back", `writing revision ${loaded.pointer.revision} back failed: ${failure}`);
}

/** Every so often: are the loaded revision's chunk copies still in memcached? Gone ones (evicted, a lost node) are written back. */
function touchChunks(now: number): void {
  if (loaded === undefined || now < nextTouchAt) return;
  nextTouchAt = now + TOUCH_INTERVAL_S;
  const p = loaded.pointer;
  const keys: string[] = [];
  for (const copies of chunkCopyKeys(p)) for (const key of copies) keys.push(key);
  const [gone, failure] = touchKeys(store, connect, keys);
  if (gone === undefined) return storeProblem(`memcached: ${failure}`);
  if (gone.length === 0) return;
  problem(
    "gone",
    `${gone.length} chunk cop(ies) of revision ${p.revision} were gone from memcached (evicted, or a node lost), ${gone[0]} first; writing them back`,
  );
  writeBack("chunks gone", gone, []);
}

/**
 * One check of the pointer's copies, and a load when the newest names a newer revision. The same
 * get reads the release key, for /gray/status: no round trip of its own, nothing on the request path.
 */
function refresh(): void {
  const now = ngx_now();
  if (loaded !== undefined) loadCopy(loaded.pointer.revision);
  const [values, failure] = fetchMany(store, connect, checkNames);
  if (values === undefined)
    return storeProblem(`memcached ${options.memcached.host}:${options.memcached.port}: ${failure}; ${keeping()}`);
  checkedAt = ngx_time();
  const release = values.get(releaseName);
  releaseBytes = release === undefined ? 0 : release.length;
  releaseText = release !== undefined && release.length <= MAX_RELEASE_BYTES ? release : undefined;
  const texts = pointerNames.map((key) => values.get(key));
  const absent = pointerNames.filter((key) => values.get(key) === undefined);
  const newest = newestPointer(texts);
  if (newest === undefined) {
    if (loaded === undefined) {
      lastError = absent.length === COPIES ? undefined : `${pointerNames[0]} does not hold a rules pointer`;
      return;
    }
    missingSince = missingSince ?? checkedAt;
    problem(
      "gone",
      `the rules document ${pointerNames[0]} is gone from memcached (flush, restart or eviction); ${keeping()} and writing it back`,
    );
    const all: string[] = [];
    for (const copies of chunkCopyKeys(loaded.pointer)) for (const key of copies) all.push(key);
    return writeBack("pointer gone", all, absent);
  }
  const p = newest.pointer;
  if (loaded !== undefined && newest.text === loaded.pointerText) {
    lastError = undefined;
    missingSince = undefined;
    // A lost node took some copies with it: put them back on the nodes their keys now map to.
    if (absent.length > 0) writeBack("pointer copies gone", [], absent);
    return touchChunks(now);
  }
  if (loaded !== undefined && p.revision <= loaded.pointer.revision) {
    problem(
      "older",
      `${pointerNames[0]} names revision ${p.revision}, older than this router's ${loaded.pointer.revision} (a node lost, or restored with old keys?); ${keeping()} and writing it back`,
    );
    // Left there, an older pointer would be what the next edit builds on: rules going back in time.
    return writeBackOver(newest.text, texts);
  }
  if (p.bytes > options.max_rules_bytes)
    return problem(
      "refused",
      `revision ${p.revision} is ${p.bytes} bytes, over max_rules_bytes (${options.max_rules_bytes}); ${keeping()}`,
    );
  const [chunks, fetchFailure] = fetchChunks(p);
  if (chunks === undefined) return storeProblem(`memcached: ${fetchFailure}; ${keeping()}`);
  const bad = checkChunks(p, chunks, (i) => chunkKey(options.key_prefix, p, i));
  if (bad !== undefined) return problem("refused", `revision ${p.revision} cannot be loaded: ${bad}; ${keeping()}`);
  if (options.rules_key !== undefined && !signedBy(options.rules_key, p, chunks as string[]))
    return problem(
      "unsigned",
      `revision ${p.revision} is refused: it is ${p.signature === undefined ? "not signed" : "signed with another key, or forged"} (rules_key_file); ${keeping()}`,
    );
  const doc = parse(chunks as string[]);
  if (typeof doc === "string") return problem("refused", `revision ${p.revision} is refused: ${doc}; ${keeping()}`);
  adopt(p, newest.text, chunks as string[], doc, "memcached");
  saveCopy();
}

function guardedRefresh(this: void): void {
  if (loading) return;
  loading = true;
  const [ok, err] = pcall(refresh);
  loading = false;
  if (!ok) problem("bug", `loading the rules failed: ${err}`);
}

function onTimer(this: void, premature: boolean): void {
  if (premature) return;
  store = backgroundStore;
  guardedRefresh();
}

/** The worker's first load: the dict's copy, else memcached, while this worker's requests wait (bounded). */
function firstLoad(): void {
  firstLoading = true;
  loading = true;
  const [ok, fromCopy] = pcall(loadCopy);
  loading = false;
  if (!ok || !fromCopy) guardedRefresh();
  firstLoading = false;
}

function onFirstLoadTimer(this: void, premature: boolean): void {
  if (premature) firstLoading = false;
  else firstLoad();
}

/**
 * Starts the worker's timer and its first load: at once on a request (without init_worker()), or
 * in a timer of its own from init_worker, which cannot use sockets. Requests arriving meanwhile
 * wait for that load, bounded, either way.
 */
function start(loadNow: boolean): void {
  started = true;
  ngx.timer.every(options.cache_ttl_ms / 1000, onTimer);
  if (loadNow) return firstLoad();
  firstLoading = true;
  const [timer] = ngx.timer.at(0, onFirstLoadTimer);
  // No timer (worker exiting, timers exhausted): the periodic check loads; no request waits.
  if (timer === undefined) firstLoading = false;
}

/** From init_worker_by_lua: an idle router loads, heals and reads the release too, and no request waits on the first load. */
export function startRules(): void {
  if (!started) start(false);
}

/** How long a request waits for its worker's first load: a pointer and a chunk round trip, and the parse. */
function waitForFirstLoad(): void {
  const until = ngx_now() + (2 * options.memcached.timeout_ms) / 1000 + 0.5;
  while (firstLoading && loaded === undefined && ngx_now() < until) ngx.sleep(0.002);
}

/** The rules in force: read once per request. */
export function currentRules(): InForce {
  if (!started) start(true);
  else if (firstLoading && loaded === undefined) waitForFirstLoad();
  const expiry = inForce.view.nextExpiry;
  if (expiry !== 0 && ngx_time() >= expiry) inForce = { ...inForce, view: viewOf(loaded?.doc) };
  return inForce;
}

/** The route's target under these rules (stable's for a route they do not know). */
export function targetOf(rules: InForce, route: string): RouteTarget {
  return rules.targets[route] ?? rules.targets[STABLE]!;
}

/** The release key as last read: its text (undefined when absent or over MAX_RELEASE_BYTES) and its size in bytes (0: absent). */
export function releaseRead(): LuaMultiReturn<[string | undefined, number]> {
  return $multi(releaseText, releaseBytes);
}

export function documentStatus(): DocumentStatus {
  return {
    revision: loaded?.pointer.revision,
    age_s: loaded === undefined ? undefined : Math.max(0, Math.floor(ngx_time() - loaded.pointer.revision / 1000)),
    source: loaded?.source,
    loaded_at: loaded === undefined ? undefined : Math.floor(loaded.at),
    checked_at: checkedAt,
    bytes: loaded?.pointer.bytes ?? 0,
    entries: { ips: loaded?.ips ?? 0, ranges: loaded?.ranges ?? 0, users: loaded?.users ?? 0 },
    last_error: lastError,
    missing_since: missingSince,
  };
}
