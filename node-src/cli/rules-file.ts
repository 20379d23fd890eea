/** A rules file as `gray apply` and `gray diff` take it (what `gray export` prints), read and checked before the store is touched. */
import { readFileSync } from "node:fs";
import { emptyDocument } from "../../lua-src/gray/document.ts";
import { RulesEditError } from "../rules/edit.ts";
import { fromJson } from "../rules/json.ts";
import { type Context, UsageError } from "./command.ts";

/** The file's JSON ("-": stdin), checked in full: a bad entry is a UsageError naming it, before anything is read or written. */
export function readRulesFile(ctx: Context): unknown {
  if (ctx.args.length !== 1)
    throw new UsageError("give one rules file (JSON as gray export prints it), or - for stdin");
  const path = ctx.args[0]!;
  let text: string;
  try {
    text = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${path} is not JSON: ${(err as Error).message}`);
  }
  try {
    fromJson(raw, emptyDocument());
  } catch (err) {
    if (err instanceof RulesEditError) throw new UsageError(`${path}: ${err.message}`);
    throw err;
  }
  return raw;
}
