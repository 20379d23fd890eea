/**
 * The rules document: every rule for one key_prefix in one versioned text, so routers answer from
 * memory and edits are compare-and-swaps of one pointer. Pure: the router (Lua) parses it in slices
 * between yields, the CLI (JavaScript) parses, edits and writes it with the same code.
 *
 * In memcached (P is the key_prefix):
 *   P gray:rules                          the pointer: "1 <revision> <nonce> <bytes> <crc32>,<crc32>... [hmac-sha1=<base64>]"
 *   P gray:rules:<revision>:<nonce>:<i>   chunk i of that revision's text (whole lines, ≤ CHUNK_BYTES each)
 * and each of them again under "P ~1:gray:rules..." and "P ~2:gray:rules..." (copyKey()): a pool
 * of memcached nodes (twemproxy's ketama) spreads the copies over its nodes, so losing a node loses no revision; a reader takes the
 * newest pointer of the copies it finds, and for each chunk the first copy that matches the pointer.
 * Chunks are written first and the pointer last, so a reader never sees a half-written revision.
 * A revision is a time in milliseconds (later than the one it replaces): the newest wins even when
 * a flush or a lost node brings an older pointer back. The nonce keeps two writers that picked
 * the same millisecond off each other's chunks; each chunk's CRC-32 proves it is the one meant.
 *
 * The text, printable ASCII, one record per line, fields separated by one space:
 *   gray-rules 1 <revision> <ips> <ranges> <users>      the counts let a reader size its tables once
 *   stable <upstream|-> <location|->                   targets a promote set (else the router's options)
 *   canary <name> <buckets|-> <upstream|-> <location|-> buckets: "<start>+<count>,..." in the order taken
 *   history <revision> <at> <by> <pointer|-> <change>  newest first; pointer of an older revision, with ':' for ' '
 *   ip <address> <canary> <expires>                    expires: Unix seconds, 0 for never
 *   range <cidr> <canary> <expires>
 *   user <id> <canary> <expires>
 *   end <entries>                                      the number of ip/range/user lines: a cut text is caught
 */
import { type Cidr, parseCidr } from "./ip.ts";
import { type RangeSet, buildRanges } from "./ranges.ts";
import { alnumOr } from "./text.ts";

export const FORMAT = 1;
export const RULES_KEY = "gray:rules";
/** Weight buckets: a client's bucket is crc32(user id or address) mod BUCKETS; each canary owns some. */
export const BUCKETS = 100000;
/** The canary a seed-era conf knows (canary_location, canary_upstream, canary_value). */
export const DEFAULT_CANARY = "canary";
export const STABLE = "stable";
/** Under memcached's 1 MB item limit, with room for the item header. */
export const CHUNK_BYTES = 512 * 1024;
export const HISTORY_KEEP = 20;
export const MAX_CANARY_NAME_BYTES = 32;

export interface Targets {
  upstream: string | undefined;
  location: string | undefined;
}

export interface CanaryDef extends Targets {
  /** Owned buckets as start, count pairs, in the order they were taken: lowering gives back from the end. */
  buckets: number[];
}

export interface HistoryEntry {
  revision: number;
  /** Unix seconds. */
  at: number;
  /** user@host of the CLI that wrote it. */
  by: string;
  /** The pointer of that revision (to roll back to it); undefined for the document's own revision. */
  pointer: string | undefined;
  change: string;
}

export interface RulesDocument {
  revision: number;
  stable: Targets;
  canaries: Record<string, CanaryDef>;
  /** Canary names in document order (which is the order ranges are tried in). */
  canaryNames: string[];
  /** address (as nginx prints it) → canary name; *Expires only for entries that expire. */
  ips: Record<string, string>;
  ipExpires: Record<string, number>;
  ranges: Record<string, string>;
  rangeExpires: Record<string, number>;
  users: Record<string, string>;
  userExpires: Record<string, number>;
  /** Newest first. */
  history: HistoryEntry[];
  entries: number;
}

export interface Pointer {
  revision: number;
  nonce: string;
  bytes: number;
  crcs: number[];
  /** HMAC-SHA1 (base64) of signedText(), when the writer had a rules key. */
  signature?: string;
}

const SIGNATURE = "hmac-sha1=";

/**
 * What a revision's signature covers: its revision, nonce and size, then its whole text, so no
 * part of a signed revision can be swapped for another's.
 */
export function signedText(p: Pointer, text: string): string {
  return `${p.revision} ${p.nonce} ${p.bytes}\n${text}`;
}

/** Copies of the pointer and of each chunk, each under its own key. */
export const COPIES = 3;

export function pointerKey(prefix: string): string {
  return prefix + RULES_KEY;
}

export function chunkKey(prefix: string, p: Pointer, index: number): string {
  return `${prefix}${RULES_KEY}:${p.revision}:${p.nonce}:${index}`;
}

/**
 * The key of a copy: the key itself for copy 0, else the key with "~<copy>:" just before its
 * "gray:rules" (after the key_prefix): P~1:gray:rules, P~1:gray:rules:<revision>:<nonce>:<i>.
 * The tag goes early on purpose: twemproxy hashes keys with FNV-1a and keeps 32 bits, and keys that
 * differ only in their last byte land close together on the ketama ring, most often on one node.
 */
export function copyKey(key: string, copy: number): string {
  if (copy === 0) return key;
  // The last "gray:rules" is ours: a key_prefix may hold the words too, the suffix never does.
  let at = key.indexOf(RULES_KEY);
  for (let next = at; next >= 0; next = key.indexOf(RULES_KEY, next + 1)) at = next;
  return `${key.substring(0, at)}~${copy}:${key.substring(at)}`;
}

/** Every copy's key, the first being the key itself. */
export function copyKeys(key: string): string[] {
  const keys: string[] = [];
  for (let copy = 0; copy < COPIES; copy++) keys.push(copyKey(key, copy));
  return keys;
}

/** Of the pointer texts found (undefined where a copy is absent), the newest readable one, or undefined. */
export function newestPointer(texts: (string | undefined)[]): { text: string; pointer: Pointer } | undefined {
  let newest: { text: string; pointer: Pointer } | undefined;
  for (const text of texts) {
    const pointer = text === undefined ? undefined : parsePointer(text);
    if (pointer !== undefined && (newest === undefined || pointer.revision > newest.pointer.revision))
      newest = { text: text!, pointer };
  }
  return newest;
}

/** 1–32 bytes of lowercase letters, digits, - and _, and not "stable". */
export function isCanaryName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_CANARY_NAME_BYTES || name === STABLE) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 95)) return false;
  }
  return true;
}

function isDigits(s: string): boolean {
  if (s.length === 0 || s.length > 15) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** The next space-separated field of `line` from `from`; FIELD_END is where it stopped. */
let fieldEnd = 0;
function field(line: string, from: number): string | undefined {
  if (from > line.length) return undefined;
  let end = line.indexOf(" ", from);
  if (end < 0) end = line.length;
  fieldEnd = end + 1;
  return line.substring(from, end);
}

export function formatPointer(p: Pointer): string {
  const signed = p.signature === undefined ? "" : ` ${SIGNATURE}${p.signature}`;
  return `${FORMAT} ${p.revision} ${p.nonce} ${p.bytes} ${p.crcs.join(",")}${signed}`;
}

/** An HMAC-SHA1 in base64: 28 characters. */
function isSignature(s: string): boolean {
  return s.length === 28 && s.charAt(27) === "=" && alnumOr(s, "+/=");
}

export function parsePointer(text: string): Pointer | undefined {
  if (text.length > 4096) return undefined;
  const version = field(text, 0);
  const revision = field(text, fieldEnd);
  const nonce = field(text, fieldEnd);
  const bytes = field(text, fieldEnd);
  const crcText = field(text, fieldEnd);
  const signed = field(text, fieldEnd);
  if (version !== `${FORMAT}` || crcText === undefined || fieldEnd <= text.length) return undefined;
  let signature: string | undefined;
  if (signed !== undefined) {
    signature = signed.substring(SIGNATURE.length);
    if (signed.substring(0, SIGNATURE.length) !== SIGNATURE || !isSignature(signature)) return undefined;
  }
  if (!isDigits(revision!) || !isDigits(bytes!) || nonce!.length === 0 || nonce!.length > 16 || !alnumOr(nonce!, ""))
    return undefined;
  const crcs: number[] = [];
  let at = 0;
  while (at <= crcText.length) {
    let end = crcText.indexOf(",", at);
    if (end < 0) end = crcText.length;
    const crc = crcText.substring(at, end);
    if (!isDigits(crc)) return undefined;
    crcs.push(Number(crc));
    at = end + 1;
  }
  const p: Pointer = { revision: Number(revision), nonce: nonce!, bytes: Number(bytes), crcs };
  if (signature !== undefined) p.signature = signature;
  return p;
}

export function emptyDocument(): RulesDocument {
  return {
    revision: 0,
    stable: { upstream: undefined, location: undefined },
    canaries: {},
    canaryNames: [],
    ips: {},
    ipExpires: {},
    ranges: {},
    rangeExpires: {},
    users: {},
    userExpires: {},
    history: [],
    entries: 0,
  };
}

/** "0+5000,20000+100" → [0, 5000, 20000, 100]; undefined when malformed or out of range. */
export function parseBuckets(text: string): number[] | undefined {
  const out: number[] = [];
  if (text === "-") return out;
  let at = 0;
  while (at <= text.length) {
    let end = text.indexOf(",", at);
    if (end < 0) end = text.length;
    const plus = text.indexOf("+", at);
    if (plus < 0 || plus > end) return undefined;
    const start = text.substring(at, plus);
    const count = text.substring(plus + 1, end);
    if (!isDigits(start) || !isDigits(count)) return undefined;
    const s = Number(start);
    const n = Number(count);
    if (n === 0 || s + n > BUCKETS) return undefined;
    out.push(s, n);
    at = end + 1;
  }
  return out;
}

export function formatBuckets(buckets: number[]): string {
  if (buckets.length === 0) return "-";
  const parts: string[] = [];
  for (let i = 0; i < buckets.length; i += 2) parts.push(`${buckets[i]}+${buckets[i + 1]}`);
  return parts.join(",");
}

function optionalName(text: string | undefined): string | undefined {
  return text === "-" ? undefined : text;
}

function isPrintable(line: string): boolean {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c < 32 || c > 126) return false;
  }
  return true;
}

/**
 * Reads a document in slices, chunk after chunk (chunks hold whole lines), so a router can yield
 * between slices. Lenient where a wrong value can do no harm (an address or user key that is not
 * one never matches a client), strict where it could (numbers, canary names, CIDRs); `check` (the
 * CLI's) judges addresses and ids too, and only printable ASCII is accepted then.
 */
export class DocumentReader {
  // Not readonly: the first line's counts may size its tables.
  private doc = emptyDocument();
  private text = "";
  private offset = 0;
  private line = 0;
  private ended = false;
  private counted = 0;
  /** Why the text is refused, once it is. */
  failure: string | undefined;

  /**
   * @param check judges each entry's subject (the CLI's strict reading); undefined in the router.
   * @param sized makes a table for that many entries: the router's are made full size at once, since
   * growing one past 65,536 entries rehashes it all in one go, a pause of 10–20 ms.
   */
  constructor(
    private readonly check: ((kind: string, subject: string) => boolean) | undefined,
    private readonly sized?: (entries: number) => Record<string, string>,
  ) {}

  private fail(why: string): false {
    this.failure = `line ${this.line}: ${why}`;
    return false;
  }

  /** The next chunk of text to read; the one before must have been read to its end. */
  feed(text: string): void {
    this.text = text;
    this.offset = 0;
  }

  /** Reads up to `lines` more lines of the current chunk; true while there is more of it to read and nothing is wrong. */
  step(lines: number): boolean {
    const text = this.text;
    for (let n = 0; n < lines; n++) {
      if (this.offset >= text.length) return false;
      let nl = text.indexOf("\n", this.offset);
      if (nl < 0) nl = text.length;
      const line = text.substring(this.offset, nl);
      this.offset = nl + 1;
      this.line++;
      if (!this.record(line)) return false;
    }
    return this.offset < text.length;
  }

  /** The document, or undefined with `failure` set; call once step() returned false. */
  finish(): RulesDocument | undefined {
    if (this.failure !== undefined) return undefined;
    if (!this.ended) {
      this.failure = "the text ends before its end line (cut short?)";
      return undefined;
    }
    return this.doc;
  }

  private record(line: string): boolean {
    const doc = this.doc;
    if (this.ended) return this.fail("text after the end line");
    if (this.check !== undefined && !isPrintable(line)) return this.fail("a character that is not printable ASCII");
    const kind = field(line, 0)!;
    if (this.line === 1) {
      const version = field(line, fieldEnd);
      const revision = field(line, fieldEnd);
      const ips = field(line, fieldEnd);
      const ranges = field(line, fieldEnd);
      const users = field(line, fieldEnd);
      if (kind !== "gray-rules" || version !== `${FORMAT}` || users === undefined || fieldEnd <= line.length)
        return this.fail(`not a gray-rules ${FORMAT} document`);
      if (!isDigits(revision!) || !isDigits(ips!) || !isDigits(ranges!) || !isDigits(users))
        return this.fail("the first line needs a revision and 3 counts");
      doc.revision = Number(revision);
      if (this.sized !== undefined) {
        doc.ips = this.sized(Number(ips));
        doc.users = this.sized(Number(users));
      }
      return true;
    }
    if (kind === "ip" || kind === "range" || kind === "user") return this.entry(kind, line);
    if (kind === "canary") {
      const name = field(line, fieldEnd);
      const buckets = field(line, fieldEnd);
      const upstream = field(line, fieldEnd);
      const location = field(line, fieldEnd);
      if (location === undefined || !isCanaryName(name!))
        return this.fail("a canary line needs a valid name and 3 fields");
      if (doc.canaries[name!] !== undefined) return this.fail(`canary ${name} twice`);
      const owned = parseBuckets(buckets!);
      if (owned === undefined) return this.fail(`canary ${name}: bad buckets ${buckets}`);
      doc.canaries[name!] = { buckets: owned, upstream: optionalName(upstream), location: optionalName(location) };
      doc.canaryNames.push(name!);
      return true;
    }
    if (kind === "stable") {
      const upstream = field(line, fieldEnd);
      const location = field(line, fieldEnd);
      if (location === undefined) return this.fail("a stable line needs 2 fields");
      doc.stable = { upstream: optionalName(upstream), location: optionalName(location) };
      return true;
    }
    if (kind === "history") {
      const revision = field(line, fieldEnd);
      const at = field(line, fieldEnd);
      const by = field(line, fieldEnd);
      const pointer = field(line, fieldEnd);
      if (pointer === undefined || !isDigits(revision!) || !isDigits(at!))
        return this.fail("a history line needs revision, time, author, pointer and change");
      doc.history.push({
        revision: Number(revision),
        at: Number(at),
        by: by!,
        pointer: pointer === "-" ? undefined : pointer.split(":").join(" "),
        change: fieldEnd <= line.length ? line.substring(fieldEnd) : "",
      });
      return true;
    }
    if (kind === "end") {
      const count = field(line, fieldEnd);
      if (count === undefined || !isDigits(count) || Number(count) !== this.counted)
        return this.fail(`the end line counts ${count} entries, the text has ${this.counted}`);
      doc.entries = this.counted;
      this.ended = true;
      return true;
    }
    return this.fail(`unknown record ${kind.substring(0, 20)}`);
  }

  private entry(kind: string, line: string): boolean {
    const doc = this.doc;
    const subject = field(line, fieldEnd);
    const canary = field(line, fieldEnd);
    const expires = field(line, fieldEnd);
    if (expires === undefined || fieldEnd <= line.length || !isDigits(expires) || subject!.length === 0)
      return this.fail(`${kind} needs a subject, a canary and an expiry`);
    if (doc.canaries[canary!] === undefined)
      return this.fail(`${kind} ${subject} names canary ${canary}, not declared above it`);
    if (this.check !== undefined && !this.check(kind, subject!)) return this.fail(`not a valid ${kind}: ${subject}`);
    const at = Number(expires);
    this.counted++;
    if (kind === "ip") {
      doc.ips[subject!] = canary!;
      if (at > 0) doc.ipExpires[subject!] = at;
    } else if (kind === "user") {
      doc.users[subject!] = canary!;
      if (at > 0) doc.userExpires[subject!] = at;
    } else {
      if (parseCidr(subject!) === undefined) return this.fail(`not a CIDR: ${subject}`);
      doc.ranges[subject!] = canary!;
      if (at > 0) doc.rangeExpires[subject!] = at;
    }
    return true;
  }
}

/** Parses a whole text at once (the CLI, and a router's cold start). */
export function parseDocument(
  text: string,
  check?: (kind: string, subject: string) => boolean,
): RulesDocument | string {
  const reader = new DocumentReader(check);
  reader.feed(text);
  while (reader.step(100000)) {
    // keep reading
  }
  return reader.finish() ?? reader.failure!;
}

/** The percentage of clients a canary's buckets hold. */
export function weightOf(def: CanaryDef): number {
  let owned = 0;
  for (let i = 1; i < def.buckets.length; i += 2) owned += def.buckets[i]!;
  return (owned * 100) / BUCKETS;
}

/** What the router decides with, built once per loaded revision. */
export interface RulesView {
  ips: Record<string, string>;
  ipExpires: Record<string, number>;
  users: Record<string, string>;
  userExpires: Record<string, number>;
  /** The canaries this router can send to: an entry naming another one stays on stable. */
  canaries: Record<string, boolean>;
  /** Per canary, in document order. */
  rangeSets: { canary: string; set: RangeSet }[];
  rangeCount: number;
  /** Owned bucket intervals sorted by start: [start, end) owned by owners[i]. */
  starts: number[];
  ends: number[];
  owners: string[];
  /** Unix seconds when the next range expires (the view is rebuilt then); 0 for none. */
  nextExpiry: number;
}

/**
 * The view of a document (or of none: then the configured weight is the default canary's), with
 * the configured ranges added to the default canary's. `routable` names the canaries the router
 * can send to (its options'); the document's others are left out, so their entries stay on stable.
 */
export function buildView(
  doc: RulesDocument | undefined,
  configuredRanges: Cidr[],
  configuredWeight: number,
  routable: string[],
  now: number,
): RulesView {
  const view: RulesView = {
    ips: doc === undefined ? {} : doc.ips,
    ipExpires: doc === undefined ? {} : doc.ipExpires,
    users: doc === undefined ? {} : doc.users,
    userExpires: doc === undefined ? {} : doc.userExpires,
    canaries: {},
    rangeSets: [],
    rangeCount: 0,
    starts: [],
    ends: [],
    owners: [],
    nextExpiry: 0,
  };
  for (const name of routable) view.canaries[name] = true;
  const names = doc === undefined ? [DEFAULT_CANARY] : [...doc.canaryNames];
  if (names.indexOf(DEFAULT_CANARY) < 0) names.push(DEFAULT_CANARY);
  const intervals: number[][] = [];
  for (const name of names) {
    if (view.canaries[name] !== true) continue;
    const cidrs = name === DEFAULT_CANARY ? [...configuredRanges] : [];
    if (doc !== undefined) {
      for (const cidr in doc.ranges) {
        if (doc.ranges[cidr] !== name) continue;
        const expires = doc.rangeExpires[cidr];
        if (expires !== undefined) {
          if (expires <= now) continue;
          if (view.nextExpiry === 0 || expires < view.nextExpiry) view.nextExpiry = expires;
        }
        cidrs.push(parseCidr(cidr)!);
      }
    }
    if (cidrs.length > 0) {
      view.rangeSets.push({ canary: name, set: buildRanges(cidrs) });
      view.rangeCount += cidrs.length;
    }
    const def = doc?.canaries[name];
    const buckets =
      def !== undefined
        ? def.buckets
        : name === DEFAULT_CANARY && doc === undefined
          ? [0, Math.floor(configuredWeight * (BUCKETS / 100))]
          : [];
    for (let i = 0; i < buckets.length; i += 2) {
      if (buckets[i + 1]! > 0) intervals.push([buckets[i]!, buckets[i]! + buckets[i + 1]!, names.indexOf(name)]);
    }
  }
  intervals.sort((a, b) => a[0]! - b[0]!);
  for (const it of intervals) {
    view.starts.push(it[0]!);
    view.ends.push(it[1]!);
    view.owners.push(names[it[2]!]!);
  }
  return view;
}

/** The canary owning the bucket, or undefined (stable). A few intervals: a scan beats a search. */
export function bucketOwner(view: RulesView, bucket: number): string | undefined {
  const starts = view.starts;
  for (let i = 0; i < starts.length; i++) {
    if (bucket < starts[i]!) return undefined;
    if (bucket < view.ends[i]!) return view.owners[i];
  }
  return undefined;
}
