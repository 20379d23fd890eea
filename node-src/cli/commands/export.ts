/** `gray export`: the rules document as JSON on stdout, the backup `gray apply` restores. */
import { type RulesJson, toJson } from "../../rules/json.ts";
import { type Command, noArgs } from "../command.ts";
import { noDocument, readRules } from "../rules-command.ts";
import { StoreError } from "../store.ts";

/** Indented at the top, one entry per line: readable, diffable, and small for a million entries. */
export function exportText(data: RulesJson): string {
  const fields = Object.entries(data as unknown as Record<string, unknown>).map(([key, value]) => {
    const inner = Array.isArray(value)
      ? value.length === 0
        ? "[]"
        : `[\n${value.map((v) => `    ${JSON.stringify(v)}`).join(",\n")}\n  ]`
      : typeof value === "object" && value !== null && key === "canaries"
        ? `{\n${Object.entries(value)
            .map(([k, v]) => `    ${JSON.stringify(k)}: ${JSON.stringify(v)}`)
            .join(",\n")}\n  }`
        : JSON.stringify(value);
    return `  ${JSON.stringify(key)}: ${inner}`;
  });
  return `{\n${fields.join(",\n")}\n}`;
}

export const exportRules: Command = {
  name: "export",
  usage: "gray export > rules.json",
  summary: "print the rules document as JSON (the backup: gray apply restores it); exit 1 when there is none",
  options: {},
  prepare: (ctx) => {
    noArgs(ctx);
    return async () => {
      const doc = await readRules(ctx);
      if (doc === undefined) throw new StoreError(`${noDocument(ctx)}: nothing to export`);
      const data = toJson(doc);
      return { text: exportText(data), data };
    };
  },
};
