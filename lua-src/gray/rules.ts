/**
 * The decision rules, in order: override → user id → IP flag → ranges → weight.
 * Pure: compiled to Lua for route() and to JavaScript for `gray explain`, so the CLI's
 * answer is the router's answer, not a re-implementation of it.
 */
import { type Cidr, parseAddress } from "./ip.ts";
import { type RangeSet, buildRanges, parseRangeList, rangesContain } from "./ranges.ts";
import { alnumOr } from "./text.ts";

/** The rule that decided; "none" means nothing matched and the request stays on stable. */
export type Rule = "override" | "user" | "ip" | "range" | "weight" | "none";

export interface Decision {
  readonly canary: boolean;
  readonly rule: Rule;
}

// Returned by reference: deciding allocates nothing per request.
const OVERRIDE_CANARY: Decision = { canary: true, rule: "override" };
const OVERRIDE_STABLE: Decision = { canary: false, rule: "override" };
const BY_USER: Decision = { canary: true, rule: "user" };
const BY_IP: Decision = { canary: true, rule: "ip" };
const BY_RANGE: Decision = { canary: true, rule: "range" };
const BY_WEIGHT: Decision = { canary: true, rule: "weight" };
const NO_RULE: Decision = { canary: false, rule: "none" };

export const RULES: Rule[] = ["override", "user", "ip", "range", "weight", "none"];

/** The options the rules read (a subset of the router's options). */
export interface RuleOptions {
  key_prefix: string;
  canary_value: string;
  override_header: string | undefined;
  override_cookie: string | undefined;
  user_header: string | undefined;
  user_cookie: string | undefined;
}

/** The settings every client shares, read from the store as one. */
export interface Globals {
  /** Configured ranges plus `<prefix>gray:ranges`. */
  ranges: RangeSet;
  /** `<prefix>gray:weight`, or the configured default. */
  weight: number;
}

/**
 * What the rules ask the store; the router answers from its cache, the CLI from memcached.
 * @noSelf
 */
export interface Lookups {
  /** The value under a per-client key (`<prefix><ip>`, `<prefix>uid:<id>`), undefined when absent. */
  flag: (key: string) => string | undefined;
  /** The ranges and weight in force (the router refreshes them here when due). */
  globals: () => Globals;
  /** CRC-32 of the text (ngx.crc32_short in nginx, zlib's crc32 in Node). */
  hash: (text: string) => number;
}

export const USER_KEY = "uid:";
export const RANGES_KEY = "gray:ranges";
export const WEIGHT_KEY = "gray:weight";
export const MAX_USER_ID_BYTES = 64;
/** Weight picks use buckets of 1/1000 of a percent. */
const BUCKETS = 100000;

/** 1–64 bytes of letters, digits and - . _ ~ @ + = : — checked before an id becomes a memcached key. */
export function isUserId(id: string): boolean {
  return id.length > 0 && id.length <= MAX_USER_ID_BYTES && alnumOr(id, "-._~@+=:");
}

function isCookieSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/** The value of the first cookie called `name` in a Cookie header ("a=1; b=2"), as sent (quotes kept). */
export function cookieValue(header: string, name: string): string | undefined {
  let i = 0;
  while (i < header.length) {
    while (i < header.length && (isCookieSpace(header.charCodeAt(i)) || header.charCodeAt(i) === 59)) i++;
    const start = i;
    let eq = -1;
    while (i < header.length && header.charCodeAt(i) !== 59) {
      if (eq < 0 && header.charCodeAt(i) === 61) eq = i;
      i++;
    }
    if (eq >= 0) {
      let nameEnd = eq;
      while (nameEnd > start && isCookieSpace(header.charCodeAt(nameEnd - 1))) nameEnd--;
      if (header.substring(start, nameEnd) === name) {
        let from = eq + 1;
        let to = i;
        while (from < to && isCookieSpace(header.charCodeAt(from))) from++;
        while (to > from && isCookieSpace(header.charCodeAt(to - 1))) to--;
        return header.substring(from, to);
      }
    }
  }
  return undefined;
}

/** "0".."100" with optional decimals ("12.5"); anything else is undefined. */
export function parseWeight(text: string): number | undefined {
  let dot = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 && dot < 0 && i > 0) dot = i;
    else if (c < 48 || c > 57) return undefined;
  }
  const intDigits = dot < 0 ? text.length : dot;
  if (intDigits === 0 || intDigits > 3 || dot === text.length - 1 || text.length > 12) return undefined;
  const value = Number(text);
  return value <= 100 ? value : undefined;
}

/** The weight in force: the store's value when it is a valid weight, else the configured one. */
export function liveWeight(stored: string | undefined, configured: number): number {
  const parsed = stored === undefined ? undefined : parseWeight(stored);
  return parsed === undefined ? configured : parsed;
}

/** Configured ranges plus the store's list; invalid entries in the store are skipped. */
export function liveRanges(configured: Cidr[], stored: string | undefined): RangeSet {
  if (stored === undefined) return buildRanges(configured);
  const cidrs = [...configured];
  for (const cidr of parseRangeList(stored).cidrs) cidrs.push(cidr);
  return buildRanges(cidrs);
}

/**
 * Sticky: the same text always falls in the same bucket, and a bucket below w% is below any
 * larger weight, so raising the weight only moves users from stable to canary.
 */
export function inWeight(hash: number, weight: number): boolean {
  return hash % BUCKETS < weight * (BUCKETS / 100);
}

/** "always" / "never" from the override header, else from the override cookie. */
export function overrideOf(
  o: RuleOptions,
  header: string | undefined,
  cookies: string | undefined,
): Decision | undefined {
  let value = header;
  if (value !== "always" && value !== "never" && o.override_cookie !== undefined && cookies !== undefined) {
    value = cookieValue(cookies, o.override_cookie);
  }
  if (value === "always") return OVERRIDE_CANARY;
  if (value === "never") return OVERRIDE_STABLE;
  return undefined;
}

/** The first valid user id: from the user header, else from the user cookie. */
export function userIdOf(o: RuleOptions, header: string | undefined, cookies: string | undefined): string | undefined {
  if (header !== undefined && isUserId(header)) return header;
  if (o.user_cookie === undefined || cookies === undefined) return undefined;
  const fromCookie = cookieValue(cookies, o.user_cookie);
  return fromCookie !== undefined && isUserId(fromCookie) ? fromCookie : undefined;
}

/**
 * Routes one request. `ip` is the client address as nginx prints it; `overrideHeader` and
 * `userHeader` are the raw values of the configured headers, `cookies` the Cookie header.
 * Store lookups happen only when an earlier rule has not decided.
 */
export function decide(
  o: RuleOptions,
  look: Lookups,
  ip: string,
  overrideHeader: string | undefined,
  userHeader: string | undefined,
  cookies: string | undefined,
): Decision {
  if (o.override_header !== undefined || o.override_cookie !== undefined) {
    const forced = overrideOf(o, overrideHeader, cookies);
    if (forced !== undefined) return forced;
  }
  let user: string | undefined;
  if (o.user_header !== undefined || o.user_cookie !== undefined) {
    user = userIdOf(o, userHeader, cookies);
    if (user !== undefined && look.flag(o.key_prefix + USER_KEY + user) === o.canary_value) return BY_USER;
  }
  if (look.flag(o.key_prefix + ip) === o.canary_value) return BY_IP;
  const { ranges, weight } = look.globals();
  if (ranges.size > 0) {
    const addr = parseAddress(ip);
    if (addr !== undefined && rangesContain(ranges, addr)) return BY_RANGE;
  }
  if (weight > 0 && inWeight(look.hash(user === undefined ? ip : user), weight)) return BY_WEIGHT;
  return NO_RULE;
}
