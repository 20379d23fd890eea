/**
 * The decision rules, in order: override → user id → IP flag → ranges → weight.
 * Pure: compiled to Lua for route() and to JavaScript for `gray explain`, so the CLI's
 * answer is the router's answer, not a re-implementation of it.
 */
import { BUCKETS, DEFAULT_CANARY, type RulesView, STABLE, bucketOwner } from "./document.ts";
import { parseAddress } from "./ip.ts";
import { rangesContain } from "./ranges.ts";
import { alnumOr } from "./text.ts";

/** The rule that decided; "none" means nothing matched and the request stays on stable. */
export type Rule = "override" | "user" | "ip" | "range" | "weight" | "none";

export interface Decision {
  /** "stable", or the name of the canary. */
  readonly route: string;
  readonly rule: Rule;
}

export const RULES: Rule[] = ["override", "user", "ip", "range", "weight", "none"];

/** Decisions are built once per rule and route and returned by reference: deciding allocates nothing per request. */
const decisions = {} as Record<Rule, Record<string, Decision>>;
for (const rule of RULES) decisions[rule] = {};

function decision(rule: Rule, route: string): Decision {
  let d = decisions[rule][route];
  if (d === undefined) {
    d = { route, rule };
    decisions[rule][route] = d;
  }
  return d;
}

const NO_RULE = decision("none", STABLE);

/** The options the rules read (a subset of the router's options). */
export interface RuleOptions {
  key_prefix: string;
  canary_value: string;
  override_header: string | undefined;
  override_cookie: string | undefined;
  user_header: string | undefined;
  user_cookie: string | undefined;
  /** Per-IP keys typed as in the original recipe (`set <ip> 0 3600 1`) are looked up. */
  ip_keys: boolean;
}

/**
 * What the rules ask besides the view (the rules in force, which the caller reads once per
 * request): the router answers from its cache of per-IP keys, the CLI from memcached.
 * @noSelf
 */
export interface Lookups {
  /** The value under a per-IP seed key (`<prefix><ip>`), undefined when absent; asked only with ip_keys. */
  flag: (key: string) => string | undefined;
  /** Unix time in seconds, for entries that expire. */
  now: () => number;
  /** CRC-32 of the text (ngx.crc32_short in nginx, zlib's crc32 in Node). */
  hash: (text: string) => number;
}

/** The 0.1 layout's keys, one per rule: `gray migrate` reads them into the rules document. */
export const USER_KEY = "uid:";
export const RANGES_KEY = "gray:ranges";
export const WEIGHT_KEY = "gray:weight";
export const MAX_USER_ID_BYTES = 64;

/** 1–64 bytes of letters, digits and - . _ ~ @ + = : — checked before an id becomes a memcached key. */
export function isUserId(id: string): boolean {
  // "__proto__" is refused because the CLI keeps users in JavaScript objects, where it cannot be a key.
  return id.length > 0 && id.length <= MAX_USER_ID_BYTES && alnumOr(id, "-._~@+=:") && id !== "__proto__";
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

/**
 * The route the override header (else cookie) asks for: "always" (the default canary), "never"
 * (stable), or the name of a canary this router can send to.
 */
export function overrideOf(
  o: RuleOptions,
  view: RulesView,
  header: string | undefined,
  cookies: string | undefined,
): Decision | undefined {
  let value = header;
  if (!isOverride(view, value) && o.override_cookie !== undefined && cookies !== undefined) {
    value = cookieValue(cookies, o.override_cookie);
  }
  if (value === "always") return decision("override", DEFAULT_CANARY);
  if (value === "never") return decision("override", STABLE);
  if (value !== undefined && view.canaries[value] === true) return decision("override", value);
  return undefined;
}

function isOverride(view: RulesView, value: string | undefined): boolean {
  return value !== undefined && (value === "always" || value === "never" || view.canaries[value] === true);
}

/** The canary an entry names, when it has not expired and this router can send to it. */
function live(
  view: RulesView,
  canary: string | undefined,
  expires: number | undefined,
  look: Lookups,
): string | undefined {
  if (typeof canary !== "string" || view.canaries[canary] !== true) return undefined;
  return expires === undefined || expires > look.now() ? canary : undefined;
}

/** The first valid user id: from the user header, else from the user cookie. */
export function userIdOf(o: RuleOptions, header: string | undefined, cookies: string | undefined): string | undefined {
  if (header !== undefined && isUserId(header)) return header;
  if (o.user_cookie === undefined || cookies === undefined) return undefined;
  const fromCookie = cookieValue(cookies, o.user_cookie);
  return fromCookie !== undefined && isUserId(fromCookie) ? fromCookie : undefined;
}

/** The canary a seed key's value names: canary_value for the default canary, or a canary's name. */
function seedCanary(o: RuleOptions, view: RulesView, value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (value === o.canary_value) return view.canaries[DEFAULT_CANARY] === true ? DEFAULT_CANARY : undefined;
  return view.canaries[value] === true ? value : undefined;
}

/** The client's weight bucket: the same text always falls in the same one. */
export function bucketOf(look: Lookups, text: string): number {
  return look.hash(text) % BUCKETS;
}

/**
 * Routes one request. `ip` is the client address as nginx prints it; `overrideHeader` and
 * `userHeader` are the raw values of the configured headers, `cookies` the Cookie header.
 * Only a per-IP seed key (ip_keys) may ask memcached; everything else is answered by `view`.
 */
export function decide(
  o: RuleOptions,
  look: Lookups,
  view: RulesView,
  ip: string,
  overrideHeader: string | undefined,
  userHeader: string | undefined,
  cookies: string | undefined,
): Decision {
  if (o.override_header !== undefined || o.override_cookie !== undefined) {
    const forced = overrideOf(o, view, overrideHeader, cookies);
    if (forced !== undefined) return forced;
  }
  let user: string | undefined;
  if (o.user_header !== undefined || o.user_cookie !== undefined) {
    user = userIdOf(o, userHeader, cookies);
    if (user !== undefined) {
      const canary = live(view, view.users[user], view.userExpires[user], look);
      if (canary !== undefined) return decision("user", canary);
    }
  }
  const flagged = live(view, view.ips[ip], view.ipExpires[ip], look);
  if (flagged !== undefined) return decision("ip", flagged);
  if (o.ip_keys) {
    const seeded = seedCanary(o, view, look.flag(o.key_prefix + ip));
    if (seeded !== undefined) return decision("ip", seeded);
  }
  const sets = view.rangeSets;
  if (sets.length > 0) {
    const addr = parseAddress(ip);
    if (addr !== undefined) {
      for (const entry of sets) if (rangesContain(entry.set, addr)) return decision("range", entry.canary);
    }
  }
  if (view.starts.length > 0) {
    const owner = bucketOwner(view, bucketOf(look, user === undefined ? ip : user));
    if (owner !== undefined) return decision("weight", owner);
  }
  return NO_RULE;
}
