/** Flags that several commands take (--ttl, --value, --url and other URLs): their parseArgs options, help lines and checks. */
import { type Context, UsageError, stringFlag } from "./command.ts";
import { DEFAULT_STATUS_URL } from "./status.ts";

/** Ten years: longer is surely a typo. */
const MAX_TTL_S = 10 * 365 * 24 * 3600;

export const ttlOption = { ttl: { type: "string" } } as const;
export const ttlHelp = "  --ttl S                expire the flag after S seconds (default: never)";

/** --ttl in whole seconds; 0 (never) when not given. */
export function ttlOf(ctx: Context): number {
  const raw = stringFlag(ctx, "ttl");
  if (raw === undefined) return 0;
  const ttl = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!(ttl >= 1 && ttl <= MAX_TTL_S)) throw new UsageError(`--ttl must be a whole number of seconds from 1 to ${MAX_TTL_S}: ${JSON.stringify(raw)}`);
  return ttl;
}

export const valueOption = { value: { type: "string" } } as const;
export const valueHelp = "  --value V              the router's canary_value (default 1)";

/** --value: the router's canary_value. */
export function canaryValueOf(ctx: Context): string {
  return stringFlag(ctx, "value", "1");
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
  if (url?.protocol !== "http:" && url?.protocol !== "https:") throw new UsageError(`--${flag} takes an http:// URL: ${JSON.stringify(raw)}`);
  return raw;
}
