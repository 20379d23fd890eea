#!/usr/bin/env node
/**
 * gray: the operator's tool for the gray router, in place of typing into telnet.
 * Exit codes: 0 done; 1 memcached, the router or nginx could not be reached; 2 bad input
 * (nothing written); 3 rolled back (gray release, gray upgrade).
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { formatAddress, formatCidr, parseAddress, parseCidr } from "../../lua-src/gray/ip.ts";
import { parseRangeList } from "../../lua-src/gray/ranges.ts";
import { RANGES_KEY, USER_KEY, WEIGHT_KEY, isUserId, parseWeight } from "../../lua-src/gray/rules.ts";
import { explain, routerOptions } from "./explain.ts";
import { describe, parseDuration, parseRate, parseSteps, release } from "./release.ts";
import { DEFAULT_STATUS_URL, RouterError, fetchStatus, renderStatus } from "./status.ts";
import { type AdminStore, StoreError, parseAddress as parseHostPort, withStore } from "./store.ts";
import { UpgradeError } from "../nginx-master.ts";
import { upgrade } from "./upgrade.ts";

class UsageError extends Error {}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

interface Context {
  args: string[];
  values: Values;
  memcached: string;
  prefix: string;
  json: boolean;
}

interface Command {
  usage: string;
  summary: string;
  /** Help lines for the command's own flags. */
  flags?: string[];
  options: ParseArgsConfig["options"];
  /** Checks everything and returns the work to do: nothing is written unless all input is valid. */
  prepare: (ctx: Context) => () => Promise<Output>;
}

/** What a command prints at the end: text for people, the object for --json; and its exit code (0 unless given). */
interface Output {
  text: string;
  data: unknown;
  code?: number;
}

/** Exit code of a release or an upgrade that was undone. */
const ROLLED_BACK = 3;

const COMMON: ParseArgsConfig["options"] = {
  memcached: { type: "string" },
  prefix: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
};

const COMMON_HELP = [
  "  --memcached HOST:PORT  memcached to use (env GRAY_MEMCACHED, default 127.0.0.1:11211)",
  "  --prefix P             the router's key_prefix (default empty)",
  "  --json                 print JSON instead of text",
  "  --help                 this help",
];

const DEFAULT_MEMCACHED = "127.0.0.1:11211";
const MAX_TTL_S = 10 * 365 * 24 * 3600;

/** An IP becomes a per-IP flag key, a CIDR an entry of the range list; both normalised as nginx prints them. */
type Target = { kind: "ip"; text: string } | { kind: "range"; text: string };

function target(arg: string): Target {
  if (arg.includes("/")) {
    const cidr = parseCidr(arg);
    if (cidr !== undefined) return { kind: "range", text: formatCidr(cidr) };
  } else {
    const addr = parseAddress(arg);
    if (addr !== undefined) return { kind: "ip", text: formatAddress(addr) };
  }
  throw new UsageError(`not an IP address or CIDR: ${JSON.stringify(arg)}`);
}

function userIds(args: string[]): string[] {
  for (const id of args) {
    if (!isUserId(id)) throw new UsageError(`not a user id (1-64 letters, digits or - . _ ~ @ + = :): ${JSON.stringify(id)}`);
  }
  return args;
}

function ttlOf(values: Values): number {
  const raw = values.ttl as string | undefined;
  if (raw === undefined) return 0;
  const ttl = /^[0-9]+$/.test(raw) ? Number(raw) : NaN;
  if (!(ttl >= 1 && ttl <= MAX_TTL_S)) throw new UsageError(`--ttl must be a whole number of seconds from 1 to ${MAX_TTL_S}: ${JSON.stringify(raw)}`);
  return ttl;
}

function needArgs(ctx: Context, what: string): void {
  if (ctx.args.length === 0) throw new UsageError(`missing ${what}`);
}

/** The range list with some CIDRs added or removed; entries already there (even unreadable ones) are kept as written. */
async function editRanges(store: AdminStore, ctx: Context, add: string[], remove: string[]): Promise<string[]> {
  const key = ctx.prefix + RANGES_KEY;
  const { cidrs, invalid } = parseRangeList(await readRanges(store, key));
  const kept = cidrs.map(formatCidr).filter((e) => !remove.includes(e));
  for (const a of add) if (!kept.includes(a)) kept.push(a);
  const all = [...kept, ...invalid];
  if (all.length === 0) await store.delete(key);
  else await store.set(key, all.join(" "));
  return kept;
}

async function readRanges(store: AdminStore, key: string): Promise<string> {
  return (await store.get(key)) ?? "";
}

const valueOption = { value: { type: "string" } } as const;
const valueHelp = "  --value V              the router's canary_value (default 1)";
const ttlHelp = "  --ttl S                expire the flag after S seconds (default: never)";
const urlHelp = `  --url URL              the router's status location (default ${DEFAULT_STATUS_URL})`;
const canaryValue = (ctx: Context) => (ctx.values.value as string | undefined) ?? "1";

function httpUrl(flag: string, raw: string): string {
  let url: URL | undefined;
  try {
    url = new URL(raw);
  } catch {
    url = undefined;
  }
  if (url?.protocol !== "http:" && url?.protocol !== "https:") throw new UsageError(`--${flag} takes an http:// URL: ${JSON.stringify(raw)}`);
  return raw;
}

function noArgs(ctx: Context): void {
  if (ctx.args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(ctx.args[0])}`);
}

const COMMANDS: Record<string, Command> = {
  add: {
    usage: "gray add <ip|cidr>... [--ttl S] [--value V]",
    summary: "send IPs (per-IP flags) or CIDRs (the range list) to canary",
    flags: [ttlHelp, valueHelp],
    options: { ttl: { type: "string" }, ...valueOption },
    prepare: (ctx) => {
      needArgs(ctx, "an IP or CIDR");
      const targets = ctx.args.map(target);
      const ttl = ttlOf(ctx.values);
      const value = canaryValue(ctx);
      const ranges = targets.filter((t) => t.kind === "range").map((t) => t.text);
      if (ranges.length > 0 && ttl > 0) throw new UsageError("--ttl applies to IPs and user ids, not to ranges");
      return () =>
        withStore(ctx.memcached, async (store) => {
          const ips = targets.filter((t) => t.kind === "ip").map((t) => t.text);
          for (const ip of ips) await store.set(ctx.prefix + ip, value, ttl);
          const all = ranges.length > 0 ? await editRanges(store, ctx, ranges, []) : undefined;
          const lines = ips.map((ip) => `flagged ${ip}${ttl ? ` for ${ttl} s` : ""} (key ${ctx.prefix}${ip})`);
          if (all) lines.push(`ranges now: ${all.join(" ")}`);
          return { text: lines.join("\n"), data: { flagged: ips, ttl, ranges: all } };
        });
    },
  },
  remove: {
    usage: "gray remove <ip|cidr>...",
    summary: "stop sending IPs or CIDRs to canary",
    options: {},
    prepare: (ctx) => {
      needArgs(ctx, "an IP or CIDR");
      const targets = ctx.args.map(target);
      return () =>
        withStore(ctx.memcached, async (store) => {
          const lines: string[] = [];
          const removed: string[] = [];
          for (const t of targets.filter((x) => x.kind === "ip")) {
            const was = await store.delete(ctx.prefix + t.text);
            if (was) removed.push(t.text);
            lines.push(was ? `unflagged ${t.text}` : `${t.text} was not flagged`);
          }
          const ranges = targets.filter((t) => t.kind === "range").map((t) => t.text);
          const all = ranges.length > 0 ? await editRanges(store, ctx, [], ranges) : undefined;
          if (all) lines.push(`ranges now: ${all.length ? all.join(" ") : "(none)"}`);
          return { text: lines.join("\n"), data: { removed, ranges: all } };
        });
    },
  },
  list: {
    usage: "gray list [--value V]",
    summary: "show flagged IPs and users, the ranges and the weight",
    flags: [valueHelp],
    options: { ...valueOption },
    prepare: (ctx) => {
      if (ctx.args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(ctx.args[0])}`);
      const value = canaryValue(ctx);
      return () =>
        withStore(ctx.memcached, async (store) => {
          const ips: { ip: string; expires: number | undefined }[] = [];
          const users: { user: string; expires: number | undefined }[] = [];
          for (const { key, expires } of await store.keys()) {
            if (!key.startsWith(ctx.prefix)) continue;
            const rest = key.slice(ctx.prefix.length);
            const addr = parseAddress(rest);
            const isIp = addr !== undefined && formatAddress(addr) === rest;
            const isUser = rest.startsWith(USER_KEY) && isUserId(rest.slice(USER_KEY.length));
            if (!isIp && !isUser) continue;
            if ((await store.get(key)) !== value) continue;
            if (isIp) ips.push({ ip: rest, expires });
            else users.push({ user: rest.slice(USER_KEY.length), expires });
          }
          const ranges = parseRangeList(await readRanges(store, ctx.prefix + RANGES_KEY)).cidrs.map(formatCidr);
          const weight = await store.get(ctx.prefix + WEIGHT_KEY);
          const now = Date.now() / 1000;
          const until = (e: number | undefined) => (e === undefined ? "" : `  (expires in ${Math.max(0, Math.round(e - now))} s)`);
          const text = [
            `weight  ${weight === undefined ? "not set (the router's configured weight applies)" : `${weight} %`}`,
            `ranges  ${ranges.length ? ranges.join(" ") : "(none in memcached)"}`,
            `ips     ${ips.length ? "" : "(none)"}`,
            ...ips.map((i) => `  ${i.ip}${until(i.expires)}`),
            `users   ${users.length ? "" : "(none)"}`,
            ...users.map((u) => `  ${u.user}${until(u.expires)}`),
          ].join("\n");
          return { text, data: { weight: weight === undefined ? null : Number(weight), ranges, ips, users } };
        });
    },
  },
  "add-user": {
    usage: "gray add-user <id>... [--ttl S] [--value V]",
    summary: "send users (by the id the router reads) to canary",
    flags: [ttlHelp, valueHelp],
    options: { ttl: { type: "string" }, ...valueOption },
    prepare: (ctx) => {
      needArgs(ctx, "a user id");
      const ids = userIds(ctx.args);
      const ttl = ttlOf(ctx.values);
      const value = canaryValue(ctx);
      return () =>
        withStore(ctx.memcached, async (store) => {
          for (const id of ids) await store.set(ctx.prefix + USER_KEY + id, value, ttl);
          const text = ids.map((id) => `flagged user ${id}${ttl ? ` for ${ttl} s` : ""} (key ${ctx.prefix}${USER_KEY}${id})`).join("\n");
          return { text, data: { flagged: ids, ttl } };
        });
    },
  },
  "remove-user": {
    usage: "gray remove-user <id>...",
    summary: "stop sending users to canary",
    options: {},
    prepare: (ctx) => {
      needArgs(ctx, "a user id");
      const ids = userIds(ctx.args);
      return () =>
        withStore(ctx.memcached, async (store) => {
          const removed: string[] = [];
          const lines: string[] = [];
          for (const id of ids) {
            const was = await store.delete(ctx.prefix + USER_KEY + id);
            if (was) removed.push(id);
            lines.push(was ? `unflagged user ${id}` : `user ${id} was not flagged`);
          }
          return { text: lines.join("\n"), data: { removed } };
        });
    },
  },
  weight: {
    usage: "gray weight [PERCENT]",
    summary: "show or set the share of remaining traffic sent to canary (0-100, decimals allowed)",
    options: {},
    prepare: (ctx) => {
      if (ctx.args.length > 1) throw new UsageError("give one weight");
      const raw = ctx.args[0];
      const weight = raw === undefined ? undefined : parseWeight(raw.replace(/%$/, ""));
      if (raw !== undefined && weight === undefined) throw new UsageError(`weight must be a number from 0 to 100, e.g. 12.5: ${JSON.stringify(raw)}`);
      const key = ctx.prefix + WEIGHT_KEY;
      return () =>
        withStore(ctx.memcached, async (store) => {
          const before = await store.get(key);
          const was = before === undefined ? "not set" : `${before} %`;
          if (weight === undefined) return { text: `weight ${was}`, data: { weight: before === undefined ? null : Number(before) } };
          await store.set(key, `${weight}`);
          return { text: `weight ${weight} % (was ${was})`, data: { weight, was: before === undefined ? null : Number(before) } };
        });
    },
  },
  explain: {
    usage: "gray explain <ip> [--user ID] [--header K:V]... [--cookie K=V]... [--url URL]",
    summary: "which version a request would get, and the rule that decides (the router's own code)",
    flags: [
      "  --user ID              the request's user id (sent as the router's user_header or user_cookie)",
      "  --header K:V           a request header (repeatable), e.g. --header 'X-Gray: always'",
      "  --cookie K=V           a request cookie (repeatable)",
      urlHelp + " (its rule options are used)",
    ],
    options: {
      user: { type: "string" },
      header: { type: "string", multiple: true },
      cookie: { type: "string", multiple: true },
      url: { type: "string" },
    },
    prepare: (ctx) => {
      if (ctx.args.length !== 1) throw new UsageError("give one client IP");
      const ip = ctx.args[0]!;
      if (parseAddress(ip) === undefined) throw new UsageError(`not an IP address: ${JSON.stringify(ip)}`);
      const user = ctx.values.user as string | undefined;
      if (user !== undefined && !isUserId(user)) throw new UsageError(`not a user id (1-64 letters, digits or - . _ ~ @ + = :): ${JSON.stringify(user)}`);
      const pairs = (name: string, sep: string) =>
        ((ctx.values[name] as string[] | undefined) ?? []).map((p): [string, string] => {
          const at = p.indexOf(sep);
          if (at <= 0) throw new UsageError(`--${name} takes NAME${sep}VALUE: ${JSON.stringify(p)}`);
          return [p.slice(0, at).trim(), p.slice(at + 1).trim()];
        });
      const headers = pairs("header", ":");
      const cookies = pairs("cookie", "=");
      const url = (ctx.values.url as string | undefined) ?? DEFAULT_STATUS_URL;
      return async () => {
        const { config } = await fetchStatus(url);
        if (ctx.values.prefix !== undefined && ctx.prefix !== config.key_prefix) {
          throw new UsageError(`--prefix ${JSON.stringify(ctx.prefix)} differs from the router's key_prefix ${JSON.stringify(config.key_prefix)}`);
        }
        const e = await withStore(ctx.memcached, (store) => explain(store, routerOptions(config), { ip, user, headers, cookies }));
        return { text: `${e.route}  (rule ${e.rule}: ${e.why})`, data: e };
      };
    },
  },
  status: {
    usage: "gray status [--url URL]",
    summary: "the router's live counters (its /gray/status) as a table",
    flags: [urlHelp],
    options: { url: { type: "string" } },
    prepare: (ctx) => {
      if (ctx.args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(ctx.args[0])}`);
      const url = (ctx.values.url as string | undefined) ?? DEFAULT_STATUS_URL;
      return async () => {
        const status = await fetchStatus(url);
        return { text: renderStatus(status), data: status };
      };
    },
  },
  release: {
    usage: "gray release [--steps 1,10,50,100] [--interval 30s] [--max-error-rate 1%] [--status-url URL]",
    summary: "raise the weight step by step while the canary's 5xx rate stays under the limit; over it, weight back to 0 (exit 3)",
    flags: [
      "  --steps W,W,...        weights in percent, increasing (default 1,10,50,100)",
      "  --interval D           how long each step is watched: 30s, 500ms, 2m (default 30s)",
      "  --max-error-rate R     the highest canary 5xx rate tolerated over a step, e.g. 1% or 0.5% (default 1%)",
      `  --status-url URL       the router's status location (default ${DEFAULT_STATUS_URL})`,
    ],
    options: { steps: { type: "string" }, interval: { type: "string" }, "max-error-rate": { type: "string" }, "status-url": { type: "string" } },
    prepare: (ctx) => {
      noArgs(ctx);
      const raw = (name: string, fallback: string) => (ctx.values[name] as string | undefined) ?? fallback;
      const steps = parseSteps(raw("steps", "1,10,50,100"));
      if (steps === undefined) throw new UsageError(`--steps takes increasing weights from 0 to 100, e.g. 1,10,50,100: ${JSON.stringify(raw("steps", ""))}`);
      const intervalMs = parseDuration(raw("interval", "30s"));
      if (intervalMs === undefined) throw new UsageError(`--interval takes a duration such as 30s, 500ms or 2m: ${JSON.stringify(raw("interval", ""))}`);
      const maxErrorRate = parseRate(raw("max-error-rate", "1%"));
      if (maxErrorRate === undefined) throw new UsageError(`--max-error-rate takes a percentage from 0 to 100, e.g. 1%: ${JSON.stringify(raw("max-error-rate", ""))}`);
      const statusUrl = httpUrl("status-url", raw("status-url", DEFAULT_STATUS_URL));
      const plan = { steps, intervalMs, maxErrorRate, statusUrl, weightKey: ctx.prefix + WEIGHT_KEY };
      // A terminal gets one line per step, redrawn as it goes; a pipe gets each step's line once it has held.
      const live = process.stdout.isTTY === true && !ctx.json;
      let open = false;
      return () =>
        withStore(ctx.memcached, async (store) => {
          const outcome = await release(store, plan, (e) => {
            if (ctx.json) {
              if (e.event === "step") process.stdout.write(JSON.stringify(e) + "\n");
            } else if (live) {
              process.stdout.write(`\r\x1b[K${describe(e)}${e.event === "step" ? "\n" : ""}`);
              open = e.event !== "step";
            } else if (e.event === "step") {
              process.stdout.write(describe(e) + "\n");
            }
          });
          if (open) process.stdout.write("\n");
          return { text: describe(outcome), data: outcome, code: outcome.event === "released" ? 0 : ROLLED_BACK };
        });
    },
  },

  upgrade: {
    usage: "gray upgrade --pid-file PATH [--health-url URL]",
    summary: "nginx binary hot upgrade: USR2, WINCH, health check, QUIT the old master; a failed check rolls back (HUP old, QUIT new; exit 3)",
    flags: [
      "  --pid-file PATH        nginx's pid file (its pid directive); the new binary is whatever is on disk at the master's path",
      "  --health-url URL       must answer 2xx 5 times once the new master serves alone, else the old one comes back",
    ],
    options: { "pid-file": { type: "string" }, "health-url": { type: "string" } },
    prepare: (ctx) => {
      noArgs(ctx);
      const pidFile = ctx.values["pid-file"] as string | undefined;
      if (pidFile === undefined || pidFile === "") throw new UsageError("--pid-file PATH is required");
      const rawUrl = ctx.values["health-url"] as string | undefined;
      const healthUrl = rawUrl === undefined ? undefined : httpUrl("health-url", rawUrl);
      return async () => {
        const outcome = await upgrade(pidFile, healthUrl, (line) => ctx.json || process.stdout.write(line + "\n"));
        if (outcome.event === "upgraded") return { text: `upgraded: nginx master ${outcome.newPid} (was ${outcome.oldPid})`, data: outcome };
        return { text: `rolled back to nginx master ${outcome.oldPid}: ${outcome.problem}`, data: outcome, code: ROLLED_BACK };
      };
    },
  },
};

function help(): string {
  return [
    "gray: canary release control for the gray router (OpenResty / nginx-lua + memcached)",
    "",
    ...Object.values(COMMANDS).flatMap((c) => [`  ${c.usage}`, `      ${c.summary}`]),
    "",
    "Every command takes:",
    ...COMMON_HELP,
    "",
    "Exit codes: 0 done, 1 memcached, the router or nginx unreachable, 2 bad input (nothing written), 3 rolled back.",
  ].join("\n");
}

function commandHelp(c: Command): string {
  return [`usage: ${c.usage}`, "", c.summary, "", ...(c.flags ?? []), ...COMMON_HELP].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    (name === undefined ? process.stderr : process.stdout).write(help() + "\n");
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`gray: unknown command ${JSON.stringify(name)}\n\n${help()}\n`);
    return 2;
  }
  let work: () => Promise<Output>;
  let json = false;
  try {
    const { values, positionals } = parseArgs({ args: rest, options: { ...COMMON, ...command.options }, allowPositionals: true, strict: true });
    if (values.help) {
      process.stdout.write(commandHelp(command) + "\n");
      return 0;
    }
    json = values.json === true;
    const memcached = (values.memcached as string | undefined) ?? process.env.GRAY_MEMCACHED ?? DEFAULT_MEMCACHED;
    if (!parseHostPort(memcached)) throw new UsageError(`--memcached takes HOST:PORT: ${JSON.stringify(memcached)}`);
    const prefix = (values.prefix as string | undefined) ?? "";
    if (/[\s\x00-\x1f\x7f]/.test(prefix)) throw new UsageError("--prefix cannot contain spaces or control characters");
    work = command.prepare({ args: positionals, values, memcached, prefix, json });
  } catch (err) {
    return usageFailure(name, err);
  }
  try {
    const out = await work();
    const code = out.code ?? 0;
    if (json) process.stdout.write(JSON.stringify(out.data) + "\n");
    else if (code === 0) process.stdout.write(out.text + "\n");
    else process.stderr.write(`gray ${name}: ${out.text}\n`);
    return code;
  } catch (err) {
    if (err instanceof UsageError) return usageFailure(name, err);
    if (err instanceof StoreError || err instanceof RouterError || err instanceof UpgradeError) {
      process.stderr.write(`gray ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function usageFailure(name: string, err: unknown): number {
  if (!(err instanceof UsageError) && !(err instanceof TypeError && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))) throw err;
  // One line, always: parseArgs' own messages can span several.
  process.stderr.write(`gray ${name}: ${err.message.replace(/\s*\n\s*/g, " ")} (see gray ${name} --help)\n`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`gray: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
