/**
 * `gray explain`: runs the router's own decision code (lua-src/gray/rules.ts, here as
 * JavaScript) on what memcached holds now, and says which rule decided and why.
 */
import { crc32 } from "node:zlib";
import { formatAddress, parseAddress } from "../../lua-src/gray/ip.ts";
import { type RouterOptions, parseOptions } from "../../lua-src/gray/options.ts";
import {
  type Lookups,
  RANGES_KEY,
  type Rule,
  USER_KEY,
  WEIGHT_KEY,
  decide,
  liveRanges,
  liveWeight,
  userIdOf,
} from "../../lua-src/gray/rules.ts";
import type { RuleConfig } from "../../lua-src/gray/status.ts";
import type { AdminStore } from "./store.ts";

export interface ExplainRequest {
  /** The client address (after realip), as typed; normalised to nginx's text. */
  ip: string;
  /** A user id, sent the way the router reads it (user_header, else user_cookie). */
  user?: string;
  headers?: [string, string][];
  cookies?: [string, string][];
  /** A Cookie header as nginx hands it to the router (several lines joined by "; "); `cookies` are added after it. */
  cookieHeader?: string;
}

export interface Explanation {
  route: "canary" | "stable";
  rule: Rule;
  ip: string;
  /** The user id the rules used (valid, from header or cookie), if any. */
  user: string | undefined;
  /** The weight in force and where this client falls: canary when bucket < weight. */
  weight: number;
  bucket: number;
  ranges: number;
  why: string;
}

/** The router's rule options, from the `config` of its /gray/status. */
export function routerOptions(config: RuleConfig): RouterOptions {
  const parsed = parseOptions(config);
  if (typeof parsed === "string") throw new Error(`the router reported options this CLI cannot read: ${parsed}`);
  return parsed;
}

/** CRC-32 of the text's bytes: what ngx.crc32_short computes in nginx. */
export function hashText(text: string): number {
  return crc32(Buffer.from(text, "latin1"));
}

function headerValue(headers: [string, string][], name: string | undefined): string | undefined {
  if (name === undefined) return undefined;
  const found = headers.find(([k]) => k.toLowerCase() === name.toLowerCase());
  return found?.[1];
}

/** Explain only reads the store. */
export type StoreReader = Pick<AdminStore, "get">;

export async function explain(store: StoreReader, o: RouterOptions, request: ExplainRequest): Promise<Explanation> {
  const addr = parseAddress(request.ip);
  if (addr === undefined) throw new Error(`not an IP address: ${request.ip}`);
  const ip = formatAddress(addr);
  const headers = [...(request.headers ?? [])];
  const cookies = [...(request.cookies ?? [])];
  if (request.user !== undefined) {
    if (o.user_header !== undefined) headers.push([o.user_header, request.user]);
    else if (o.user_cookie !== undefined) cookies.push([o.user_cookie, request.user]);
  }
  const overrideHeader = headerValue(headers, o.override_header);
  const userHeader = headerValue(headers, o.user_header);
  const pairs = cookies.map(([k, v]) => `${k}=${v}`);
  if (request.cookieHeader !== undefined) pairs.unshift(request.cookieHeader);
  const cookieHeader = pairs.length === 0 ? undefined : pairs.join("; ");
  const user =
    o.user_header !== undefined || o.user_cookie !== undefined ? userIdOf(o, userHeader, cookieHeader) : undefined;

  // The rules ask synchronously (as they do in nginx): fetch every key they might ask first.
  const keys = [o.key_prefix + ip, o.key_prefix + RANGES_KEY, o.key_prefix + WEIGHT_KEY];
  if (user !== undefined) keys.push(o.key_prefix + USER_KEY + user);
  const values = new Map<string, string | undefined>();
  for (const key of keys) values.set(key, await store.get(key));

  const ranges = liveRanges(o.ranges, values.get(o.key_prefix + RANGES_KEY));
  const weight = liveWeight(values.get(o.key_prefix + WEIGHT_KEY), o.weight);
  const lookups: Lookups = {
    flag: (key) => values.get(key),
    globals: () => ({ ranges, weight }),
    hash: hashText,
  };
  const decision = decide(o, lookups, ip, overrideHeader, userHeader, cookieHeader);
  const hash = hashText(user ?? ip);
  const bucket = (hash % 100000) / 1000;
  const why: Record<Rule, string> = {
    override: `override ${overrideHeader === "always" || overrideHeader === "never" ? `header ${o.override_header}: ${overrideHeader}` : `cookie ${o.override_cookie}`} forces ${decision.canary ? "canary" : "stable"}`,
    user: `user ${user} is flagged (key ${o.key_prefix}${USER_KEY}${user})`,
    ip: `${ip} is flagged (key ${o.key_prefix}${ip})`,
    range: `${ip} is in a canary range (${ranges.size} in force)`,
    weight: `${user === undefined ? ip : `user ${user}`} falls in bucket ${bucket} %, below the weight ${weight} %`,
    none: `no rule matched; ${user === undefined ? ip : `user ${user}`} falls in bucket ${bucket} %, not below the weight ${weight} %`,
  };
  return {
    route: decision.canary ? "canary" : "stable",
    rule: decision.rule,
    ip,
    user,
    weight,
    bucket,
    ranges: ranges.size,
    why: why[decision.rule],
  };
}
