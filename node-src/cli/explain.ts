/**
 * `gray explain`: runs the router's own decision code (lua-src/gray/rules.ts, here as
 * JavaScript) on the rules document memcached holds now (and the per-IP seed key, when the
 * router reads them), and says which canary, by which rule, and why.
 */
import { crc32 } from "node:zlib";
import { BUCKETS, type RulesDocument, buildView } from "../../lua-src/gray/document.ts";
import { formatAddress, parseAddress } from "../../lua-src/gray/ip.ts";
import { type RouterOptions, parseOptions } from "../../lua-src/gray/options.ts";
import { type Lookups, type Rule, bucketOf, decide, userIdOf } from "../../lua-src/gray/rules.ts";
import type { RuleConfig } from "../../lua-src/gray/status.ts";
import { type RulesReader, readDocument } from "../rules/revisions.ts";

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
  /** "stable", or the canary's name. */
  route: string;
  rule: Rule;
  ip: string;
  /** The user id the rules used (valid, from header or cookie), if any. */
  user: string | undefined;
  /** The client's weight bucket (0 .. 99999) and, as a percentage, where it falls (0 .. 100). */
  bucket: number;
  /** The rules revision read, or null when there is none (the router's configured weight and ranges apply). */
  revision: number | null;
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

function why(
  rule: Rule,
  route: string,
  o: RouterOptions,
  who: string,
  ip: string,
  bucket: number,
  doc: RulesDocument | undefined,
): string {
  const where = doc === undefined ? "the router's configuration" : `rules revision ${doc.revision}`;
  const percent = `bucket ${bucket} (${(bucket * 100) / BUCKETS} %)`;
  switch (rule) {
    case "override":
      return `the override header ${o.override_header ?? ""} or cookie ${o.override_cookie ?? ""} asks for ${route}`;
    case "user":
      return `${who} is flagged for ${route} in ${where}`;
    case "ip":
      return doc?.ips[ip] === route
        ? `${ip} is flagged for ${route} in ${where}`
        : `${ip} has a per-IP seed key (${o.key_prefix}${ip}) naming ${route}`;
    case "range":
      return `${ip} is in a range of ${route} (${where})`;
    case "weight":
      return `${who} falls in ${percent}, which ${route} owns (${where})`;
    case "none":
      return `no rule matched; ${who} falls in ${percent}, which no canary owns (${where})`;
  }
}

/** Explain only reads the store. */
export type StoreReader = RulesReader;

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

  // The rules ask synchronously (as they do in nginx): read the document and the seed key first.
  const doc = await readDocument(store, o.key_prefix);
  const seed = o.ip_keys ? await store.get(o.key_prefix + ip) : undefined;
  const now = Math.floor(Date.now() / 1000);
  const view = buildView(doc, o.ranges, o.weight, Object.keys(o.canaries), now);
  const lookups: Lookups = {
    flag: (key) => (key === o.key_prefix + ip ? seed : undefined),
    now: () => now,
    hash: hashText,
  };
  const decision = decide(o, lookups, view, ip, overrideHeader, userHeader, cookieHeader);
  const bucket = bucketOf(lookups, user ?? ip);
  const who = user === undefined ? ip : `user ${user}`;
  return {
    route: decision.route,
    rule: decision.rule,
    ip,
    user,
    bucket,
    revision: doc?.revision ?? null,
    why: why(decision.rule, decision.route, o, who, ip, bucket, doc),
  };
}
