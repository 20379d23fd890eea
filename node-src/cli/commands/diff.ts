/** `gray diff FILE`: what `gray apply FILE` would change, one line per change. */
import { emptyDocument } from "../../../lua-src/gray/document.ts";
import { diffDocuments } from "../../rules/diff.ts";
import { fromJson } from "../../rules/json.ts";
import type { Command } from "../command.ts";
import { readRules } from "../rules-command.ts";
import { readRulesFile } from "../rules-file.ts";

export const diff: Command = {
  name: "diff",
  usage: "gray diff FILE|- [--exit-code]",
  summary: 'what gray apply FILE would change: "+ added", "- removed", "~ changed", one line each',
  flags: ["  --exit-code            exit 1 when there are changes (as git diff --exit-code); else exit 0 either way"],
  options: { "exit-code": { type: "boolean" } },
  prepare: (ctx) => {
    const raw = readRulesFile(ctx);
    return async () => {
      const current = (await readRules(ctx)) ?? emptyDocument();
      const changes = diffDocuments(current, fromJson(raw, current));
      return {
        text: changes.length > 0 ? changes.join("\n") : "no changes",
        data: { revision: current.revision || null, changes },
        code: changes.length > 0 && ctx.values["exit-code"] === true ? 1 : 0,
        stdout: true,
      };
    };
  },
};
