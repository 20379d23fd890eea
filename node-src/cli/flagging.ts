/**
 * `gray add`, `add-user`, `remove` and `remove-user` as one edit of the rules document each:
 * every target of one command line lands in the same revision.
 */
import { flag, unflag } from "../rules/edit.ts";
import type { Context, Output } from "./command.ts";
import { canaryOf, changeText, runEdit } from "./rules-command.ts";
import { ttlOf } from "./shared-flags.ts";
import type { FlagTarget } from "./targets.ts";

const label = (t: FlagTarget) => (t.kind === "user" ? `user ${t.text}` : t.text);

/** Flags the targets for --canary, each until now + --ttl (or for ever). */
export function flagWork(ctx: Context, name: string, targets: FlagTarget[]): () => Promise<Output> {
  const canary = canaryOf(ctx);
  const ttl = ttlOf(ctx);
  const flags = [...(ctx.values.canary === undefined ? [] : ["--canary", canary]), ...(ttl ? ["--ttl", `${ttl}`] : [])];
  return async () => {
    const expires = ttl > 0 ? Math.floor(Date.now() / 1000) + ttl : 0;
    const done = await runEdit(ctx, changeText(ctx, name, flags), (doc) => {
      let changed = false;
      for (const t of targets) changed = flag(doc, t.kind, t.text, canary, expires) || changed;
      return { changed, result: undefined };
    });
    const until = ttl > 0 ? ` for ${ttl} s` : "";
    const lines = targets.map((t) => `flagged ${label(t)} for ${canary}${until}`);
    lines.push(done.written ? `revision ${done.revision}` : `unchanged (revision ${done.revision})`);
    return {
      text: lines.join("\n"),
      data: {
        flagged: targets.map((t) => t.text),
        canary,
        expires: expires || null,
        revision: done.revision,
        written: done.written,
      },
    };
  };
}

/** Removes the targets' entries; with --canary, only those flagged for it. */
export function unflagWork(ctx: Context, name: string, targets: FlagTarget[]): () => Promise<Output> {
  const only = ctx.values.canary === undefined ? undefined : canaryOf(ctx);
  return async () => {
    const done = await runEdit(ctx, changeText(ctx, name, only === undefined ? [] : ["--canary", only]), (doc) => {
      const outcomes = targets.map((t) => ({ target: t, ...unflag(doc, t.kind, t.text, only) }));
      return { changed: outcomes.some((o) => o.removed), result: outcomes };
    });
    const lines = done.result.map(({ target, removed, canary }) =>
      removed
        ? `unflagged ${label(target)}`
        : canary === undefined
          ? `${label(target)} was not flagged`
          : `${label(target)} is flagged for ${canary}, not ${only}: left as it is`,
    );
    lines.push(done.written ? `revision ${done.revision}` : `unchanged (revision ${done.revision})`);
    return {
      text: lines.join("\n"),
      data: {
        removed: done.result.filter((o) => o.removed).map((o) => o.target.text),
        revision: done.revision,
        written: done.written,
      },
    };
  };
}
