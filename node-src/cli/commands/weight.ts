/** `gray weight`: shows every canary's weight, or sets one (one revision; buckets stay sticky, see ../../rules/edit.ts). */
import { parseWeight } from "../../../lua-src/gray/rules.ts";
import { setWeight, weights } from "../../rules/edit.ts";
import { type Command, type Context, type Output, UsageError } from "../command.ts";
import {
  canaryHelp,
  canaryOf,
  canaryOption,
  changeText,
  noDocument,
  readRules,
  runEdit,
  writeHelp,
  writeOptions,
} from "../rules-command.ts";

/** "12.5" or "12.5%": 0 to 100 in steps of 0.001 (one bucket). */
export function parsePercent(raw: string): number | undefined {
  const text = raw.replace(/%$/, "");
  const value = parseWeight(text);
  return value !== undefined && !/\.\d{4,}$/.test(text) ? value : undefined;
}

async function show(ctx: Context): Promise<Output> {
  const doc = await readRules(ctx);
  if (doc === undefined)
    return { text: `${noDocument(ctx)}: the routers' configured weight applies`, data: { weights: null } };
  const all = weights(doc);
  const total = Object.values(all).reduce((a, b) => a + b, 0);
  const lines = Object.entries(all).map(([name, w]) => `${name}  ${w} %`);
  lines.push(`stable  ${Math.round((100 - total) * 1000) / 1000} % (what no canary holds)`);
  return { text: lines.join("\n"), data: { weights: all, revision: doc.revision } };
}

export const weight: Command = {
  name: "weight",
  usage: "gray weight [PERCENT] [--canary NAME] [--init]",
  summary:
    "show every canary's weight, or set one: the share of clients no other rule decides (0-100, steps of 0.001; all canaries together at most 100)",
  flags: [canaryHelp, ...writeHelp],
  options: { ...canaryOption, ...writeOptions },
  prepare: (ctx) => {
    if (ctx.args.length > 1) throw new UsageError("give one weight");
    const raw = ctx.args[0];
    if (raw === undefined) return () => show(ctx);
    const wanted = parsePercent(raw);
    if (wanted === undefined)
      throw new UsageError(
        `weight must be a number from 0 to 100 in steps of 0.001, e.g. 12.5: ${JSON.stringify(raw)}`,
      );
    const canary = canaryOf(ctx);
    return async () => {
      const change = changeText(ctx, "weight", ["--canary", canary]);
      const done = await runEdit(ctx, change, (doc) => {
        const set = setWeight(doc, canary, wanted);
        return { changed: set.was !== set.now, result: set };
      });
      const { was, now } = done.result;
      return {
        text: `${canary} weight ${now} % (was ${was} %), revision ${done.revision}`,
        data: { canary, weight: now, was, revision: done.revision, written: done.written },
      };
    };
  },
};
