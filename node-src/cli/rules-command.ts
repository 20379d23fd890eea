/**
 * What the commands that read or change the rules document share: --canary, --init and --force,
 * one edit = one revision written by compare-and-swap (../rules/revisions.ts), and reading the
 * document for a command that only shows it.
 */
import { DEFAULT_CANARY, type RulesDocument, pointerKey } from "../../lua-src/gray/document.ts";
import { checkCanaryName } from "../rules/edit.ts";
import { type Edit, type Edited, editRules, readDocument } from "../rules/revisions.ts";
import { type Context, UsageError, stringFlag } from "./command.ts";
import { withStore } from "./store.ts";

export const canaryOption = { canary: { type: "string" } } as const;
export const canaryHelp = `  --canary NAME          the canary (default "${DEFAULT_CANARY}"); declared in the document on first use`;

export const onlyCanaryHelp =
  "  --canary NAME          only entries flagged for this canary (default: whichever canary)";

export const writeOptions = { init: { type: "boolean" }, force: { type: "boolean" } } as const;
export const writeHelp = [
  "  --init                 no rules document yet (and none restored by a router within 3 s): start an empty one",
  "  --force                replace a document that cannot be read (a chunk missing, not valid) instead of refusing",
];

/** --canary, checked; the default canary when not given. */
export function canaryOf(ctx: Context): string {
  try {
    return checkCanaryName(stringFlag(ctx, "canary", DEFAULT_CANARY));
  } catch (err) {
    throw new UsageError(`--canary: ${(err as Error).message}`);
  }
}

/** The command line as the history records it: the command and its arguments, without store and output flags. */
export function changeText(ctx: Context, name: string, extra: string[] = []): string {
  return [name, ...ctx.args, ...extra].join(" ");
}

/** Writes one revision with the edit (retried on conflict); warnings (a failed cleanup) go to stderr. */
export function runEdit<R>(ctx: Context, change: string, edit: Edit<R>): Promise<Edited<R>> {
  return withStore(ctx.memcached, (store) =>
    editRules(store, ctx.prefix, edit, {
      change,
      init: ctx.values.init === true,
      force: ctx.values.force === true,
      warn: (message) => process.stderr.write(`gray: ${message}\n`),
    }),
  );
}

/** The document for a command that only reads it; undefined when there is none. */
export function readRules(ctx: Context): Promise<RulesDocument | undefined> {
  return withStore(ctx.memcached, (store) => readDocument(store, ctx.prefix));
}

/** What a reading command says when there is no document. */
export function noDocument(ctx: Context): string {
  return `no rules document at ${pointerKey(ctx.prefix)} (none written yet, or the store was flushed)`;
}
