#!/usr/bin/env node
/**
 * gray: the operator's tool for the gray router, in place of typing into telnet. This file only
 * parses the common flags, dispatches to a command (commands/), prints, and maps errors to exit
 * codes: 0 done (every write acknowledged by the store); 1 memcached, the router or nginx could
 * not be reached or failed (nothing is reported done that was not); 2 bad input (nothing written);
 * 3 rolled back (gray release, gray upgrade).
 */
import { parseArgs } from "node:util";
import { UpgradeError } from "../nginx-master.ts";
import { RulesEditError } from "../rules/edit.ts";
import { COMMANDS } from "./commands/index.ts";
import { COMMON_HELP, COMMON_OPTIONS, type Command, DEFAULT_MEMCACHED, type Output, UsageError } from "./command.ts";
import { useRulesKey } from "../rules/signing.ts";
import { checkPrefix, readCredentials, readRulesKey, readTls } from "./shared-flags.ts";
import { RouterError } from "./status.ts";
import { StoreError, parseHostPort, useStoreDefaults } from "./store.ts";

function help(): string {
  return [
    "gray: canary release control for the gray router (OpenResty / nginx-lua + memcached)",
    "",
    ...COMMANDS.flatMap((c) => [`  ${c.usage}`, `      ${c.summary}`]),
    "",
    "Every command takes:",
    ...COMMON_HELP,
    "",
    "Exit codes: 0 done (every write acknowledged by the store), 1 memcached, the router or nginx unreachable or failed,",
    "2 bad input (nothing written), 3 rolled back.",
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
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`gray: unknown command ${JSON.stringify(name)}\n\n${help()}\n`);
    return 2;
  }
  let work: () => Promise<Output>;
  let json: boolean;
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: { ...COMMON_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      process.stdout.write(commandHelp(command) + "\n");
      return 0;
    }
    json = values.json === true;
    const given = (values.memcached as string | undefined) ?? process.env.GRAY_MEMCACHED;
    const memcached = given ?? DEFAULT_MEMCACHED;
    if (!parseHostPort(memcached))
      throw new UsageError(`--memcached takes HOST:PORT or [IPv6]:PORT: ${JSON.stringify(memcached)}`);
    const authFile = (values["auth-file"] as string | undefined) ?? process.env.GRAY_MEMCACHED_AUTH_FILE;
    const env = process.env;
    useStoreDefaults({
      auth: authFile === undefined ? undefined : readCredentials(authFile),
      tls: readTls(
        values.tls === true || ["1", "true"].includes(env.GRAY_MEMCACHED_TLS ?? ""),
        (values["ca-file"] as string | undefined) ?? env.GRAY_MEMCACHED_CA_FILE,
        (values["server-name"] as string | undefined) ?? env.GRAY_MEMCACHED_SERVER_NAME,
      ),
    });
    const keyFile = (values["rules-key-file"] as string | undefined) ?? process.env.GRAY_RULES_KEY_FILE;
    if (keyFile !== undefined) useRulesKey(readRulesKey(keyFile));
    const prefix = checkPrefix((values.prefix as string | undefined) ?? "", command.userKeys === true);
    work = command.prepare({ args: positionals, values, memcached, memcachedGiven: given !== undefined, prefix, json });
  } catch (err) {
    return usageFailure(name, err);
  }
  try {
    const out = await work();
    const code = out.code ?? 0;
    if (json) process.stdout.write(JSON.stringify(out.data) + "\n");
    else if (code === 0 || out.stdout === true) process.stdout.write(out.text + "\n");
    else process.stderr.write(`gray ${name}: ${out.text}\n`);
    return code;
  } catch (err) {
    if (err instanceof UsageError || err instanceof RulesEditError) return usageFailure(name, err);
    if (err instanceof StoreError || err instanceof RouterError || err instanceof UpgradeError) {
      process.stderr.write(`gray ${name}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function usageFailure(name: string, err: unknown): number {
  if (
    !(err instanceof UsageError) &&
    !(err instanceof RulesEditError) &&
    !(err instanceof TypeError && "code" in err && String(err.code).startsWith("ERR_PARSE_ARGS"))
  )
    throw err;
  // One line, always: parseArgs' own messages can span several.
  process.stderr.write(`gray ${name}: ${err.message.replace(/\s*\n\s*/g, " ")} (see gray ${name} --help)\n`);
  return 2;
}

/** Exits once stdout and stderr have taken everything: to a slow pipe, process.exit() alone cuts the output at 64 KiB. */
function exitAfterOutput(code: number): void {
  process.stdout.write("", () => process.stderr.write("", () => process.exit(code)));
}

main(process.argv.slice(2)).then(exitAfterOutput, (err) => {
  process.stderr.write(`gray: ${err instanceof Error ? err.stack : String(err)}\n`);
  exitAfterOutput(1);
});
