/**
 * What every `gray` command is made of, and the flags they all take: the entry file (gray.ts)
 * parses these, the command modules (commands/) supply the rest.
 */
import type { ParseArgsConfig } from "node:util";

/** Bad input: a one-line message, exit code 2, nothing written. */
export class UsageError extends Error {}

export type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

export interface Context {
  /** Positional arguments after the command name. */
  args: string[];
  /** Every flag as parseArgs read it, the common ones included. */
  values: Values;
  /** host:port of the store. */
  memcached: string;
  /** --memcached or GRAY_MEMCACHED was given (else `memcached` is the default). */
  memcachedGiven: boolean;
  /** The router's key_prefix. */
  prefix: string;
  json: boolean;
}

/** What a command prints at the end: text for people, the object for --json; and its exit code (0 unless given). */
export interface Output {
  text: string;
  data: unknown;
  code?: number;
  /** The text goes to stdout whatever the code (a verdict, not an error: gray diff --exit-code). */
  stdout?: boolean;
}

export interface Command {
  name: string;
  usage: string;
  summary: string;
  /** Help lines for the command's own flags. */
  flags?: string[];
  options: ParseArgsConfig["options"];
  /** Handles user ids: --prefix is checked as configure() checks key_prefix with a user rule (room for `<prefix>uid:<id>`). */
  userKeys?: boolean;
  /** Checks everything and returns the work to do: nothing is written unless all input is valid. */
  prepare: (ctx: Context) => () => Promise<Output>;
}

/** Exit code of a release or an upgrade that was undone. */
export const ROLLED_BACK = 3;

export const DEFAULT_MEMCACHED = "127.0.0.1:11211";

export const COMMON_OPTIONS: ParseArgsConfig["options"] = {
  memcached: { type: "string" },
  "auth-file": { type: "string" },
  tls: { type: "boolean" },
  "ca-file": { type: "string" },
  "server-name": { type: "string" },
  "rules-key-file": { type: "string" },
  prefix: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

export const COMMON_HELP = [
  "  --memcached HOST:PORT  memcached (or twemproxy) to use, [IPv6]:PORT too (env GRAY_MEMCACHED, default 127.0.0.1:11211)",
  "  --auth-file PATH       memcached -Y credentials (user:password) to log in with (env GRAY_MEMCACHED_AUTH_FILE)",
  "  --tls                  speak TLS to memcached (its -Z), verifying its certificate (env GRAY_MEMCACHED_TLS=1)",
  "  --ca-file PATH         with --tls: the CA that signed memcached's certificate (env GRAY_MEMCACHED_CA_FILE)",
  "  --server-name NAME     with --tls: the name memcached's certificate carries, if not the host (env GRAY_MEMCACHED_SERVER_NAME)",
  "  --rules-key-file PATH  sign each revision, and trust only signed ones, with the routers' rules_key_file (env GRAY_RULES_KEY_FILE)",
  "  --prefix P             the router's key_prefix (default empty)",
  "  --json                 print JSON instead of text",
  "  --help                 this help",
];

/** A string flag's value, or the fallback when it was not given. */
export function stringFlag(ctx: Context, name: string, fallback: string): string;
export function stringFlag(ctx: Context, name: string): string | undefined;
export function stringFlag(ctx: Context, name: string, fallback?: string): string | undefined {
  return (ctx.values[name] as string | undefined) ?? fallback;
}

export function needArgs(ctx: Context, what: string): void {
  if (ctx.args.length === 0) throw new UsageError(`missing ${what}`);
}

export function noArgs(ctx: Context): void {
  if (ctx.args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(ctx.args[0])}`);
}
