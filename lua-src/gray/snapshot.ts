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
  DocumentReader,
  type Pointer,
  type RulesDocument,
  type RulesView,
  STABLE,
  buildView,
  chunkKey,
  parsePointer,
  pointerKey,
} from "./document.ts";
import { STORE_ERROR_COUNTER, count } from "./counters.ts";
import type { RouterOptions } from "./options.ts";
import type { DocumentStatus } from "./status.ts";
import { fetchFlag, fetchMany, storeBack, touchKeys } from "./store.ts";

const ngx_now = ngx.now;
const ngx_time = ngx.time;
const ngx_log = ngx.log;

/** Lines parsed between two yields: about 1.5 ms of work, measured with 100,000-entry documents. */
const LINES_PER_SLICE = 1000;
/**
 * A yield: 0 would do on OpenResty, but Debian's nginx lacks the patch that makes ngx.sleep(0)
 * cheap and warns on every call.
 */
const YIELD_S = 0.001;
const WARN_INTERVAL_S = 5;
/** How often a worker touches its revision's chunks: finds evicted ones, and keeps them warm in memcached's LRU. */
const TOUCH_INTERVAL_S = 30;
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
let dict: SharedDict | undefined;
let pointerName = "";
let view!: RulesView;
let loaded: Loaded | undefined;
let targets: Record<string, RouteTarget> = {};
let upstreamRoutes: Record<string, string> = {};
let lastError: string | undefined;
let missingSince: number | undefined;
let checkedAt: number | undefined;
/** This worker has started its timer and its first load. */
let started = false;
/** A load runs in this worker (its first, or the timer's). */
let loading = false;
let nextTouchAt = 0;
let nextWarnAt = 0;
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

/** Targets from the options, with the document's (a promote swaps them) where they name known ones. */
function buildTargets(doc: RulesDocument | undefined): void {
  const configured: Record<string, RouteTarget> = {};
  configured[STABLE] = { location: options.stable_location, upstream: options.stable_upstream };
  for (const name in options.canaries) configured[name] = options.canaries[name]!;
  const all: RouteTarget[] = [];
  for (const name in configured) all.push(configured[name]!);
  targets = {};
  upstreamRoutes = {};
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
    upstreamRoutes[targets[name].upstream] = name;
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
  // Its own pool name, never filled: each check connects afresh (see store.ts's session()).
  connect = { pool: `gray-rules ${parsed.memcached.host}:${parsed.memcached.port}` };
  dict = zone;
  pointerName = pointerKey(parsed.key_prefix);
  loaded = undefined;
  lastError = undefined;
  missingSince = undefined;
  checkedAt = undefined;
  started = false;
  loading = false;
  unroutableWarned = {};
  routable = [];
  for (const name in parsed.canaries) routable.push(name);
  view = viewOf(undefined);
  buildTargets(undefined);
}

/** Something is wrong with the store's copy: remembered for /gray/status, warned at most every few seconds. */
function problem(message: string): void {
  lastError = message;
  const now = ngx_now();
  if (now < nextWarnAt) return;
  nextWarnAt = now + WARN_INTERVAL_S;
  ngx_log(ngx.WARN, "gray.router: ", message);
}

/** memcached failed: counted with the store's errors, and reported. */
function storeProblem(message: string): void {
  count(STORE_ERROR_COUNTER.refresh, 1);
  problem(message);
}

function keeping(): string {
  return loaded === undefined
    ? "no revision loaded yet, so only the conf's rules apply"
    : `keeping revision ${loaded.pointer.revision}`;
}

/** LuaJIT's table.new: a table with room for `hash` keys, allocated once. */
const tableNew = require("table.new") as (this: void, array: number, hash: number) => Record<string, string>;

/** A hostile count must not allocate gigabytes: beyond this, the table grows as it fills. */
const MAX_PRESIZE = 4000000;

function sized(this: void, entries: number): Record<string, string> {
  return tableNew(0, Math.min(entries, MAX_PRESIZE));
}

/** Parses the chunks, yielding between slices; the document or why it was refused. */
function parse(chunks: string[]): RulesDocument | string {
  const reader = new DocumentReader(undefined, sized);
  for (const chunk of chunks) {
    reader.feed(chunk);
    while (reader.step(LINES_PER_SLICE)) ngx.sleep(YIELD_S);
    if (reader.failure !== undefined) break;
    ngx.sleep(YIELD_S);
  }
  return reader.finish() ?? reader.failure!;
}

/**
 * Each chunk present and the one the pointer names (its CRC-32, one chunk between yields), the
 * whole as large as the pointer says.
 */
function checkChunks(p: Pointer, chunks: (string | undefined)[], where: (i: number) => string): string | undefined {
  let bytes = 0;
  for (let i = 0; i < p.crcs.length; i++) {
    const chunk = chunks[i];
    if (chunk === undefined) return `chunk ${where(i)} is missing`;
    if (ngx.crc32_long(chunk) !== p.crcs[i]) return `chunk ${where(i)} does not match the pointer's checksum`;
    bytes += chunk.length;
    ngx.sleep(YIELD_S);
  }
  return bytes === p.bytes ? undefined : `its chunks hold ${bytes} bytes, the pointer says ${p.bytes}`;
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
  view = viewOf(doc);
  buildTargets(doc);
  lastError = undefined;
  missingSince = undefined;
  nextTouchAt = ngx_now() + TOUCH_INTERVAL_S;
}

/** Keeps the loaded text in the shared dict for a reload's workers; the first worker to load a revision writes it. */
function saveCopy(): void {
  if (dict === undefined || loaded === undefined) return;
  const [current] = dict.get(DICT_POINTER);
  if (current === loaded.pointerText) return;
  const p = loaded.pointer;
  for (let i = 0; i < loaded.chunks.length; i++) {
    const [ok, why] = dict.safe_set(dictChunkKey(p, i), loaded.chunks[i]!);
    if (!ok) {
      problem(
        `lua_shared_dict ${options.cache!.dict} has no room for a copy of revision ${p.revision} (${p.bytes} bytes: ${why}), so a reload's workers will load it from memcached; enlarge the zone`,
      );
      return;
    }
  }
  dict.safe_set(DICT_POINTER, loaded.pointerText);
  const old = typeof current === "string" ? parsePointer(current) : undefined;
  if (old !== undefined) for (let i = 0; i < old.crcs.length; i++) dict.delete(dictChunkKey(old, i));
}

/** The shared dict's copy, when there is one that checks out. */
function loadCopy(): boolean {
  if (dict === undefined) return false;
  const [text] = dict.get(DICT_POINTER);
  const p = typeof text === "string" ? parsePointer(text) : undefined;
  if (p === undefined) return false;
  const chunks: (string | undefined)[] = [];
  for (let i = 0; i < p.crcs.length; i++) {
    const [chunk] = dict.get(dictChunkKey(p, i));
    chunks.push(typeof chunk === "string" ? chunk : undefined);
  }
  if (checkChunks(p, chunks, (i) => `${i}`) !== undefined) return false;
  const doc = parse(chunks as string[]);
  if (typeof doc === "string") return false;
  adopt(p, text as string, chunks as string[], doc, "shared dict");
  return true;
}

/** Writes the loaded revision back to memcached, one worker per machine at a time. */
function writeBack(replacing: string): void {
  if (loaded === undefined) return;
  if (dict !== undefined && !dict.add(HEAL_LOCK, true, HEAL_LOCK_S)[0]) return;
  const p = loaded.pointer;
  const chunks: [string, string][] = loaded.chunks.map((c, i) => [chunkKey(options.key_prefix, p, i), c]);
  const [, failure] = storeBack(options.memcached, connect, chunks, pointerName, loaded.pointerText);
  if (failure !== undefined) problem(`writing revision ${p.revision} back (${replacing}) failed: ${failure}`);
  else ngx_log(ngx.NOTICE, `gray.router: wrote revision ${p.revision} back to memcached (${replacing})`);
}

/** Every so often: are the loaded revision's chunks still in memcached? Evicted ones are written back. */
function touchChunks(now: number): void {
  if (loaded === undefined || now < nextTouchAt) return;
  nextTouchAt = now + TOUCH_INTERVAL_S;
  const p = loaded.pointer;
  const keys = p.crcs.map((_, i) => chunkKey(options.key_prefix, p, i));
  const [gone, failure] = touchKeys(options.memcached, connect, keys);
  if (gone === undefined) return storeProblem(`memcached: ${failure}`);
  if (gone.length === 0) return;
  missingSince = missingSince ?? ngx_time();
  problem(`revision ${p.revision}'s chunk ${gone[0]} was gone from memcached (evicted?); writing it back`);
  writeBack("chunks evicted");
}

/** One check of the pointer, and a load when it names a newer revision. */
function refresh(): void {
  const now = ngx_now();
  const [text, failure] = fetchFlag(options.memcached, connect, pointerName);
  if (failure !== undefined)
    return storeProblem(`memcached ${options.memcached.host}:${options.memcached.port}: ${failure}; ${keeping()}`);
  checkedAt = ngx_time();
  if (text === undefined) {
    if (loaded === undefined) {
      lastError = undefined;
      return;
    }
    missingSince = missingSince ?? checkedAt;
    problem(
      `the rules document ${pointerName} is gone from memcached (flush, restart or eviction); ${keeping()} and writing it back`,
    );
    return writeBack("pointer gone");
  }
  if (loaded !== undefined && text === loaded.pointerText) {
    lastError = undefined;
    missingSince = undefined;
    return touchChunks(now);
  }
  const p = parsePointer(text);
  if (p === undefined) return problem(`${pointerName} does not hold a rules pointer; ${keeping()}`);
  if (loaded !== undefined && p.revision <= loaded.pointer.revision)
    return problem(
      `${pointerName} names revision ${p.revision}, older than this router's ${loaded.pointer.revision} (a node lost or restored?); ${keeping()}`,
    );
  if (p.bytes > options.max_rules_bytes)
    return problem(
      `revision ${p.revision} is ${p.bytes} bytes, over max_rules_bytes (${options.max_rules_bytes}); ${keeping()}`,
    );
  const keys = p.crcs.map((_, i) => chunkKey(options.key_prefix, p, i));
  const [values, fetchFailure] = fetchMany(options.memcached, connect, keys);
  if (values === undefined) return storeProblem(`memcached: ${fetchFailure}; ${keeping()}`);
  const chunks = keys.map((k) => values.get(k));
  const bad = checkChunks(p, chunks, (i) => keys[i]!);
  if (bad !== undefined) return problem(`revision ${p.revision} cannot be loaded: ${bad}; ${keeping()}`);
  const doc = parse(chunks);
  if (typeof doc === "string") return problem(`revision ${p.revision} is refused: ${doc}; ${keeping()}`);
  adopt(p, text, chunks, doc, "memcached");
  saveCopy();
}

function guardedRefresh(this: void): void {
  if (loading) return;
  loading = true;
  const [ok, err] = pcall(refresh);
  loading = false;
  if (!ok) problem(`loading the rules failed: ${err}`);
}

function onTimer(this: void, premature: boolean): void {
  if (!premature) guardedRefresh();
}

/** A worker's first request: the dict's copy, else memcached, while this worker's other requests wait (bounded). */
function begin(): void {
  started = true;
  ngx.timer.every(options.cache_ttl_ms / 1000, onTimer);
  loading = true;
  const [ok, fromCopy] = pcall(loadCopy);
  loading = false;
  if (!ok || !fromCopy) guardedRefresh();
}

/** How long a request waits for its worker's first load: a pointer and a chunk round trip, and the parse. */
function waitForFirstLoad(): void {
  const until = ngx_now() + (2 * options.memcached.timeout_ms) / 1000 + 0.5;
  while (loading && loaded === undefined && ngx_now() < until) ngx.sleep(0.002);
}

/** The rules in force, for decide(). */
export function currentView(): RulesView {
  if (!started) begin();
  else if (loading && loaded === undefined) waitForFirstLoad();
  const expiry = view.nextExpiry;
  if (expiry !== 0 && ngx_time() >= expiry) view = viewOf(loaded?.doc);
  return view;
}

export function targetOf(route: string): RouteTarget {
  return targets[route] ?? targets[STABLE]!;
}

/** The route whose target is this upstream (log() reads $gray_upstream back). */
export function routeOfUpstream(upstream: string): string | undefined {
  return upstreamRoutes[upstream];
}

export function documentStatus(): DocumentStatus {
  return {
    revision: loaded?.pointer.revision,
    source: loaded?.source,
    loaded_at: loaded === undefined ? undefined : Math.floor(loaded.at),
    checked_at: checkedAt,
    bytes: loaded?.pointer.bytes ?? 0,
    ips: loaded?.ips ?? 0,
    users: loaded?.users ?? 0,
    ranges: loaded?.ranges ?? 0,
    last_error: lastError,
    missing_since: missingSince,
  };
}
