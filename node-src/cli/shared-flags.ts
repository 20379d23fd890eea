/** Flags that several commands take (--ttl, --value, --url and other URLs), and --prefix's check: their parseArgs options, help lines and checks. */
import { readFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import type { ConnectionOptions } from "node:tls";
import {
  type Credentials,
  checkCanaryValue,
  checkKeyPrefix,
  parseAuthFile,
  parseKeyFile,
} from "../../lua-src/gray/options.ts";
import { type Context, UsageError, stringFlag } from "./command.ts";
import { DEFAULT_STATUS_URL } from "./status.ts";

/** Ten years: longer is surely a typo. */
const MAX_TTL_S = 10 * 365 * 24 * 3600;

export const ttlOption = { ttl: { type: "string" } } as const;
export const ttlHelp = "  --ttl S                the entry expires after S seconds (default: never)";

/** --ttl in whole seconds; 0 (never) when not given. */
export function ttlOf(ctx: Context): number {
  const raw = stringFlag(ctx, "ttl");
  if (raw === undefined) return 0;
  const ttl = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!(ttl >= 1 && ttl <= MAX_TTL_S))
    throw new UsageError(`--ttl must be a whole number of seconds from 1 to ${MAX_TTL_S}: ${JSON.stringify(raw)}`);
  return ttl;
}

export const valueOption = { value: { type: "string" } } as const;
export const valueHelp = "  --value V              the router's canary_value (default 1)";
export const legacyValueHelp =
  "  --value V              accepted (checked) for 0.1 scripts, no effect: entries name a canary, see --canary";

/** --value: the router's canary_value, checked by the rules configure() applies to it. */
export function canaryValueOf(ctx: Context): string {
  const value = stringFlag(ctx, "value", "1");
  const bad = checkCanaryValue(luaBytes(value));
  if (bad !== undefined)
    throw new UsageError(`--value must be ${bad}, as the router's canary_value: ${JSON.stringify(value)}`);
  return value;
}

export const urlHelp = `  --url URL              the router's status location (default ${DEFAULT_STATUS_URL})`;

/** An http:// or https:// URL, or a UsageError naming the flag. */
export function httpUrl(flag: string, raw: string): string {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== "http:" && url?.protocol !== "https:")
    throw new UsageError(`--${flag} takes an http:// URL: ${JSON.stringify(raw)}`);
  return raw;
}

/** The text as Lua (and memcached) sees it, one char per byte of its UTF-8: what the router's checks count. */
export function luaBytes(text: string): string {
  return Buffer.from(text, "utf8").toString("latin1");
}

/** --prefix, checked by the rules configure() applies to key_prefix (stricter for commands that write user keys). */
export function checkPrefix(prefix: string, userKeys: boolean): string {
  const bad = checkKeyPrefix(luaBytes(prefix), userKeys);
  if (bad === undefined) return prefix;
  const shown = prefix.length > 40 ? `${prefix.slice(0, 40)}...` : prefix;
  throw new UsageError(
    `--prefix must be ${bad}, as the router's key_prefix (got ${Buffer.byteLength(prefix)} bytes: ${JSON.stringify(shown)})`,
  );
}

export const pidFileOption = { "pid-file": { type: "string" } } as const;

/** --pid-file, which the commands that signal nginx's master require. */
export function pidFileOf(ctx: Context): string {
  const pidFile = stringFlag(ctx, "pid-file");
  if (pidFile === undefined || pidFile === "") throw new UsageError("--pid-file PATH is required");
  return pidFile;
}

function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${path}: ${(err as Error).message}`);
  }
}

/** --auth-file: memcached -Y's format, read by the router's own parser; unreadable or bad is bad input. */
export function readCredentials(path: string): Credentials {
  const parsed = parseAuthFile(readFlagFile("--auth-file", path));
  if (typeof parsed === "string") throw new UsageError(`--auth-file: ${path}: ${parsed}`);
  return parsed;
}

/**
 * --tls, --ca-file, --server-name: memcached's -Z, the certificate verified against the CA file
 * (else Node's own CAs) and the name (else the host). The CA file is checked now: bad input writes nothing.
 */
export function readTls(on: boolean, caFile?: string, serverName?: string): ConnectionOptions | undefined {
  if (!on) {
    if (caFile !== undefined || serverName !== undefined)
      throw new UsageError(`${caFile !== undefined ? "--ca-file" : "--server-name"} needs --tls`);
    return undefined;
  }
  const options: ConnectionOptions = serverName === undefined ? {} : { servername: serverName };
  if (caFile === undefined) return options;
  const ca = readFlagFile("--ca-file", caFile);
  try {
    // A secure context takes text without a certificate in it silently; the parser does not.
    new X509Certificate(ca);
  } catch (err) {
    throw new UsageError(`--ca-file: ${caFile}: not PEM certificates (${(err as Error).message})`);
  }
  return { ...options, ca };
}

/** --rules-key-file: the key the router's rules_key_file holds, read by the same parser. */
export function readRulesKey(path: string): string {
  const key = parseKeyFile(readFlagFile("--rules-key-file", path));
  if (typeof key !== "string") throw new UsageError(`--rules-key-file: ${path}: ${key.error}`);
  return key;
}
