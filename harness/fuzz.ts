/**
 * The header/cookie fuzzer's generator: a world of flagged addresses (per-IP seed keys, and entries
 * of the rules document), users flagged in the document, and loopback peers, and requests whose X-Real-IP, X-Forwarded-For, user id, override and Cookie headers are drawn
 * from it in every spelling an attacker or a broken proxy might send. Seeded: the same seed
 * gives the same world and the same requests.
 *
 * What is generated stays within what an HTTP client can send and nginx hands to Lua (else
 * nginx answers 400 before the router runs, which is nginx's business, not the router's):
 * - values hold no CR, LF or NUL (undici refuses them; they would end the header line), and no
 *   other control byte but tab; bytes 0x80-0xff are sent as they are;
 * - values neither start nor end with a space or tab: nginx strips them before Lua sees the value;
 * - each header line is at most 7 KiB and all of them together at most 16 KiB, within nginx's
 *   default large_client_header_buffers (4 × 8 KiB);
 * - X-Real-IP, the user header and the override header are sent once; X-Forwarded-For and Cookie
 *   may come as several lines, which nginx joins (", " and "; ") as it hands them to Lua.
 */
import { formatAddress, parseAddress } from "../lua-src/gray/ip.ts";
import { type Random, seededRandom } from "./random.ts";

const MAX_LINE = 7 * 1024;
const MAX_HEADERS = 16 * 1024;

/** GRAY_FUZZ_SEED, or a fresh one; callers print it so a failing run can be replayed. */
export function fuzzSeed(): number {
  const given = process.env.GRAY_FUZZ_SEED;
  return given !== undefined && given !== "" ? Number(given) : Math.floor(Math.random() * 2 ** 31);
}

export interface FuzzNames {
  key_prefix: string;
  override_header: string;
  override_cookie: string;
  user_header: string;
  user_cookie: string;
}

export interface FuzzWorld {
  /** Loopback sources inside trusted_proxies, and outside it. */
  trustedPeers: string[];
  untrustedPeers: string[];
  /** Proxy addresses (inside trusted_proxies) that appear as hops in chains. */
  proxyHops: string[];
  /** Client addresses that appear in headers, as nginx prints them. */
  addresses: string[];
  /** Valid user ids. */
  users: string[];
  /** memcached key → value: the per-IP seed keys the world starts with (canary_value, a canary's name, or neither). */
  flags: Map<string, string>;
  /** Rules document entries, subject → canary (some name a canary the router does not know). */
  ipRules: Map<string, string>;
  userRules: Map<string, string>;
}

/** The canaries the world's rules name: the router knows the first two (FUZZ_CANARIES), not "gamma". */
export const FUZZ_CANARIES = ["canary", "beta"];
const RULE_CANARIES = ["canary", "canary", "canary", "beta", "gamma"];

/** One generated request: what is sent, and what nginx hands the router as $http_* variables. */
export interface FuzzRequest {
  from: string;
  /** Flat name, value list as sent. */
  headers: string[];
  realIp: string | undefined;
  forwardedFor: string | undefined;
  override: string | undefined;
  user: string | undefined;
  cookie: string | undefined;
}

function range(n: number, f: (i: number) => string): string[] {
  return Array.from({ length: n }, (_, i) => f(i));
}

export function fuzzWorld(seed: number, names: FuzzNames): FuzzWorld {
  const r = seededRandom(seed);
  const hex = () => r.int(65536).toString(16);
  const canonical = (s: string) => formatAddress(parseAddress(s)!);
  const addresses = [
    ...range(40, () => `203.0.113.${r.int(256)}`),
    ...range(20, () => `192.0.2.${r.int(256)}`),
    ...range(15, () => `2001:db8:1::${hex()}`),
    ...range(15, () => `2001:db8:2:${hex()}::${hex()}`),
    ...range(10, () => `::ffff:203.0.113.${r.int(256)}`),
  ].map(canonical);
  const idChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~@+=:";
  const users = range(60, (i) =>
    i === 0 ? "x".repeat(64) : range(1 + r.int(20), () => idChars[r.int(idChars.length)]!).join(""),
  );
  const trustedPeers = range(24, (i) => `127.0.1.${1 + i}`);
  // 127.0.1.128-135 sit just outside the trusted 127.0.1.0/25; ::1 is an untrusted IPv6 peer.
  const untrustedPeers = [...range(24, (i) => `127.0.2.${1 + i}`), ...range(8, (i) => `127.0.1.${128 + i}`), "::1"];
  const proxyHops = [
    ...range(6, () => `198.51.100.${r.int(256)}`),
    ...range(3, () => `2001:db8:ffff::${hex()}`),
    ...trustedPeers.slice(0, 4),
  ].map(canonical);
  const flags = new Map<string, string>();
  // Mostly "1" (canary_value: the default canary); some "0", which is neither the canary value nor a
  // canary's name and so means stable; some "beta", a canary's name.
  const flagSome = (keys: string[], p: number) => {
    for (const key of keys)
      if (r.chance(p)) flags.set(names.key_prefix + key, r.chance(0.8) ? "1" : r.chance(0.5) ? "0" : "beta");
  };
  flagSome(addresses, 0.4);
  flagSome([...trustedPeers, ...untrustedPeers], 0.4);
  const ruleSome = (subjects: string[], p: number) => {
    const rules = new Map<string, string>();
    for (const subject of subjects) if (r.chance(p)) rules.set(subject, r.pick(RULE_CANARIES));
    return rules;
  };
  const ipRules = ruleSome([...addresses, ...trustedPeers, ...untrustedPeers.map(canonical)], 0.2);
  const userRules = ruleSome(users, 0.4);
  return { trustedPeers, untrustedPeers, proxyHops, addresses, users, flags, ipRules, userRules };
}

/** The address as a client, a proxy or an attacker might spell it; many spellings are not addresses at all. */
function spell(r: Random, text: string): string {
  const addr = parseAddress(text)!;
  const port = () => r.pick(["80", "443", "0", "65535", "65536", "99999", ""]);
  if (addr.length === 2) {
    const octets = text.split(".").map(Number);
    return r.pick([
      () => text,
      () => text,
      () => octets.map((o) => "0".repeat(r.int(3)) + o).join("."),
      () => `${text}:${port()}`,
      () => `[${text}]:${port()}`,
      () => octets.map((o) => `0${o.toString(8)}`).join("."),
      () => octets.map((o) => `0x${o.toString(16)}`).join("."),
      () => String(octets.reduce((a, o) => a * 256 + o, 0)),
      () => `::ffff:${text}`,
      () => `${text}.`,
      () => `${text}%eth0`,
    ])();
  }
  const full = addr.map((g) => g.toString(16).padStart(4, "0")).join(":");
  return r.pick([
    () => text,
    () => text,
    () => text.toUpperCase(),
    () => full,
    () => full.toUpperCase(),
    () => addr.map((g) => g.toString(16)).join(":"),
    () => `[${text}]`,
    () => `[${text}]:${port()}`,
    () => `${text}%eth0`,
    () => `${text}%25`,
    () => `${full}:1`,
    () => `:${text}`,
  ])();
}

/** Bytes as a latin1 string: what undici puts on the wire for each character. */
function bytes(r: Random, n: number, from: number, to: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String.fromCharCode(from + r.int(to - from + 1));
  return s;
}

const GARBAGE = [
  "unknown",
  "_hidden",
  "garbage",
  "300.1.1.1",
  "1.2.3",
  "1.2.3.4.5",
  "1..2.3",
  "-1.2.3.4",
  "255.255.255.255",
  "0.0.0.0",
  "::",
  "::::",
  ":::1",
  "1:2:3:4:5:6:7:8:9",
  "[::1",
  "[]:80",
  "[2001:db8::1]x",
  "fe80::1%eth0",
  "get fz:203.0.113.5",
  "flush_all",
  "delete fz:gray:rules",
  "%0d%0aflush_all",
  "get x%0D%0Aflush_all",
  "set fz:127.0.2.1 0 0 1",
  "\\r\\nflush_all",
];

/** Control-free binary: printable ASCII, tab, and bytes 0x80-0xff. */
function binary(r: Random, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++)
    s += r.chance(0.05) ? "\t" : r.chance(0.5) ? bytes(r, 1, 0x21, 0x7e) : bytes(r, 1, 0x80, 0xff);
  return s;
}

function utf8(text: string): string {
  return Buffer.from(text, "utf8").toString("latin1");
}

/** A hop of a chain or a whole X-Real-IP: mostly addresses in some spelling, some proxies, some garbage. */
function hop(r: Random, w: FuzzWorld, from: string): string {
  return r.pick([
    () => spell(r, r.pick(w.addresses)),
    () => spell(r, r.pick(w.addresses)),
    () => spell(r, r.pick(w.proxyHops)),
    () => r.pick(w.proxyHops),
    () => r.pick(w.trustedPeers.filter((p) => p !== from)),
    () => r.pick(w.untrustedPeers),
    () => r.pick(GARBAGE),
    () => binary(r, 1 + r.int(12)),
  ])();
}

function chain(r: Random, w: FuzzWorld, from: string, hops: number): string {
  const separators = [", ", ",", " ", " , ", ",,", ", , ", ",  "];
  let out = hop(r, w, from);
  for (let i = 1; i < hops; i++) {
    const next = r.chance(0.1) ? out.slice(out.lastIndexOf(" ") + 1) : hop(r, w, from); // a duplicated hop
    out += r.pick(separators) + next;
  }
  return out;
}

function userValue(r: Random, w: FuzzWorld, room: number): string {
  return r.pick([
    () => r.pick(w.users),
    () => r.pick(w.users),
    () => r.pick(w.users),
    () => "y".repeat(65),
    () => `${r.pick(w.users)} `.repeat(2).trim(),
    () => utf8(r.pick(["ユーザー", "用户", "пользователь", "😀", "café"])),
    () => utf8(`${r.pick(w.users)}é`),
    () => binary(r, 1 + r.int(80)),
    () => r.pick(GARBAGE),
    () => `${r.pick(w.users)} flush_all`,
    () => `get ${r.pick(w.users)}`,
    () => "z".repeat(Math.max(1, Math.min(room, 1000 + r.int(6000)))),
  ])();
}

function overrideValue(r: Random): string {
  return r.pick([
    "always",
    "never",
    "always",
    "never",
    "beta",
    "gamma",
    "stable",
    "Beta",
    "Always",
    "NEVER",
    "alwaysx",
    "always,never",
    "1",
    "yes",
    "never;",
    "al ways",
    utf8("always\u00a0"),
  ]);
}

function cookieSegment(r: Random, w: FuzzWorld, n: FuzzNames, room: number): string {
  return r.pick([
    () => `${n.user_cookie}=${userValue(r, w, room)}`,
    () => `${n.user_cookie}=${r.pick(w.users)}`,
    () => `${n.override_cookie}=${overrideValue(r)}`,
    () => `${n.user_cookie}="${r.pick(w.users)}"`,
    () => `${n.user_cookie} = ${r.pick(w.users)}`,
    () => `${n.override_cookie.toUpperCase()}=always`,
    () => `x${n.user_cookie}=${r.pick(w.users)}`,
    () => `other=${binary(r, r.int(20))}`,
    () => "junk",
    () => `=${r.pick(w.users)}`,
    () => "",
  ])();
}

/** Headers under the size rules: add() refuses what would not fit. */
class HeaderList {
  readonly flat: string[] = [];
  private total = 0;

  room(name: string): number {
    return Math.max(0, Math.min(MAX_LINE, MAX_HEADERS - this.total) - name.length - 4);
  }

  /** Adds the header, its value trimmed of edge whitespace (which nginx would strip); undefined when it does not fit. */
  add(name: string, raw: string): string | undefined {
    const value = raw.replace(/^[ \t]+|[ \t]+$/g, "");
    if (value.length > this.room(name)) return undefined;
    this.flat.push(name, value);
    this.total += name.length + value.length + 4;
    return value;
  }
}

/** Several lines of one header, as nginx joins them for Lua; undefined when none fitted. */
function addLines(list: HeaderList, name: string, values: string[], join: string): string | undefined {
  const sent = values.map((v) => list.add(name, v)).filter((v): v is string => v !== undefined);
  return sent.length === 0 ? undefined : sent.join(join);
}

/**
 * Sometimes splits a value into two header lines at a separator. Each line starts with a
 * non-separator: realip walks X-Forwarded-For line by line and stops at a line that is empty or
 * starts with "," where the router, reading nginx's joined variable, walks on (a known divergence).
 */
function splitLines(r: Random, value: string, separator: string): string[] {
  if (!r.chance(0.15)) return [value];
  const parts = value.split(separator);
  const cut = 1 + r.int(Math.max(1, parts.length - 1));
  const lines = [parts.slice(0, cut).join(separator), parts.slice(cut).join(separator)];
  // Trimmed as nginx trims a header value (spaces and tabs), so no line is sent empty.
  return lines.map((line) => line.replace(/^[ \t,;]+|[ \t]+$/g, "")).filter((line) => line.length > 0);
}

function fuzzRequest(r: Random, w: FuzzWorld, n: FuzzNames, trusted: boolean): FuzzRequest {
  const from = r.pick(trusted ? w.trustedPeers : w.untrustedPeers);
  const list = new HeaderList();
  const req: FuzzRequest = {
    from,
    headers: list.flat,
    realIp: undefined,
    forwardedFor: undefined,
    override: undefined,
    user: undefined,
    cookie: undefined,
  };
  if (r.chance(0.05)) {
    // Past ngx.req.get_headers()'s default of 100: the router must not depend on it.
    const junk = 101 + r.int(60);
    for (let i = 0; i < junk; i++) list.add(`X-Fuzz-${i}`, bytes(r, 1 + r.int(8), 0x61, 0x7a));
  }
  if (r.chance(0.6)) {
    const hops = r.chance(0.04) ? 300 : 1 + r.int(6);
    const xff = chain(r, w, from, hops);
    req.forwardedFor = addLines(
      list,
      r.pick(["X-Forwarded-For", "x-forwarded-for", "X-FORWARDED-FOR"]),
      splitLines(r, xff, ","),
      ", ",
    );
  }
  if (r.chance(0.5)) {
    const value = r.chance(0.8) ? hop(r, w, from) : chain(r, w, from, 2 + r.int(3));
    req.realIp = list.add(r.pick(["X-Real-IP", "x-real-ip"]), value);
  }
  // Underscores make nginx drop the header (underscores_in_headers off): a spoof the router never sees.
  if (r.chance(0.05)) list.add("X_Real_IP", r.pick(w.addresses));
  if (r.chance(0.2)) req.override = list.add(n.override_header, overrideValue(r));
  if (r.chance(0.5)) req.user = list.add(n.user_header, userValue(r, w, list.room(n.user_header)));
  if (r.chance(0.5)) {
    const segments = Array.from({ length: 1 + r.int(5) }, () =>
      cookieSegment(r, w, n, Math.floor(list.room("Cookie") / 2)),
    );
    const cookie = segments.join(r.pick(["; ", ";", " ; "]));
    req.cookie = addLines(list, "Cookie", splitLines(r, cookie, ";"), "; ");
  }
  return req;
}

export function fuzzRequests(seed: number, w: FuzzWorld, n: FuzzNames, count: number): FuzzRequest[] {
  const r = seededRandom(seed ^ 0x5eed);
  return Array.from({ length: count }, () => fuzzRequest(r, w, n, r.chance(0.5)));
}
