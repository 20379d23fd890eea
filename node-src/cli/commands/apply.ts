/** `gray apply FILE`: the rules of a file (as gray export prints them) written as one new revision. */
import { diffDocuments } from "../../rules/diff.ts";
import { fromJson } from "../../rules/json.ts";
import type { Command } from "../command.ts";
import { changeText, runEdit, writeOptions } from "../rules-command.ts";
import { readRulesFile } from "../rules-file.ts";

export const apply: Command = {
  name: "apply",
  usage: "gray apply FILE|-",
  summary:
    "replace the rules with a file's (JSON as gray export prints it; - for stdin): checked in full first (a bad entry: exit 2, nothing written), then one new revision; starts the document if there is none",
  flags: ["  --force                replace a document that cannot be read instead of refusing"],
  options: { force: writeOptions.force },
  prepare: (ctx) => {
    const raw = readRulesFile(ctx);
    // A backup restores a flushed store: no --init needed (the wait for a router's copy still comes first).
    const initCtx = { ...ctx, values: { ...ctx.values, init: true } };
    return async () => {
      const done = await runEdit(initCtx, changeText(ctx, "apply"), (doc) => {
        const next = fromJson(raw, doc);
        const changes = diffDocuments(doc, next);
        Object.assign(doc, next);
        return { changed: changes.length > 0, result: changes };
      });
      const what = done.written ? `applied: revision ${done.revision}` : `unchanged (revision ${done.revision})`;
      return {
        text: [...done.result, what].join("\n"),
        data: { revision: done.revision, written: done.written, changes: done.result },
      };
    };
  },
};
