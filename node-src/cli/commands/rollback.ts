/** `gray rollback REV`: a new revision whose rules are those of REV (read through the pointer its history line keeps). */
import { parsePointer } from "../../../lua-src/gray/document.ts";
import { diffDocuments } from "../../rules/diff.ts";
import { replaceRules } from "../../rules/edit.ts";
import { readRevision } from "../../rules/revisions.ts";
import { type Command, UsageError } from "../command.ts";
import { changeText, noDocument, readRules, runEdit, writeOptions } from "../rules-command.ts";
import { StoreError, withStore } from "../store.ts";

export const rollback: Command = {
  name: "rollback",
  usage: "gray rollback REV",
  summary: "write a new revision with the rules of an earlier one (see gray history); exit 1 if it is gone",
  options: { force: writeOptions.force },
  prepare: (ctx) => {
    if (ctx.args.length !== 1 || !/^\d{1,15}$/.test(ctx.args[0]!))
      throw new UsageError("give one revision number (see gray history)");
    const wanted = Number(ctx.args[0]);
    return async () => {
      const doc = await readRules(ctx);
      if (doc === undefined) throw new StoreError(noDocument(ctx));
      const line = doc.history.find((h) => h.revision === wanted);
      if (line === undefined)
        throw new StoreError(`revision ${wanted} is not in the last ${doc.history.length} (see gray history)`);
      const pointer = line.pointer === undefined ? undefined : parsePointer(line.pointer);
      const target =
        line.revision === doc.revision
          ? doc
          : pointer === undefined
            ? undefined
            : await withStore(ctx.memcached, (store) => readRevision(store, ctx.prefix, pointer));
      if (target === undefined) throw new StoreError(`revision ${wanted}: its history line keeps no pointer to it`);
      const done = await runEdit(ctx, changeText(ctx, "rollback"), (current) => {
        const changes = diffDocuments(current, target);
        replaceRules(current, target);
        return { changed: changes.length > 0, result: changes };
      });
      const what = done.written
        ? `revision ${done.revision} has the rules of ${wanted}`
        : `the rules already equal revision ${wanted}`;
      return {
        text: [...done.result, what].join("\n"),
        data: { rolledBackTo: wanted, revision: done.revision, written: done.written, changes: done.result },
      };
    };
  },
};
