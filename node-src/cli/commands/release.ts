/** `gray release`: the weight raised step by step while the canary's 5xx rate holds; over the limit, back to 0 (../release.ts). */
import { percentToBuckets, setWeight } from "../../rules/edit.ts";
import { type Command, ROLLED_BACK, UsageError, noArgs, stringFlag } from "../command.ts";
import { describe, parseDuration, parseRate, parseSteps, release as runRelease } from "../release.ts";
import { canaryHelp, canaryOf, canaryOption, runEdit, writeHelp, writeOptions } from "../rules-command.ts";
import { httpUrl } from "../shared-flags.ts";
import { DEFAULT_STATUS_URL } from "../status.ts";

export const release: Command = {
  name: "release",
  usage: "gray release [--canary NAME] [--steps 1,10,50,100] [--interval 30s] [--max-error-rate 1%] [--status-url URL]",
  summary:
    "raise a canary's weight step by step (a revision each) while its 5xx rate stays under the limit; over it, weight back to 0 (exit 3)",
  flags: [
    "  --steps W,W,...        weights in percent, increasing (default 1,10,50,100)",
    "  --interval D           how long each step is watched: 30s, 500ms, 2m (default 30s)",
    "  --max-error-rate R     the highest canary 5xx rate tolerated over a step, e.g. 1% or 0.5% (default 1%)",
    `  --status-url URL       the router's status location (default ${DEFAULT_STATUS_URL})`,
    canaryHelp,
    ...writeHelp,
  ],
  options: {
    ...canaryOption,
    ...writeOptions,
    steps: { type: "string" },
    interval: { type: "string" },
    "max-error-rate": { type: "string" },
    "status-url": { type: "string" },
  },
  prepare: (ctx) => {
    noArgs(ctx);
    const steps = parseSteps(stringFlag(ctx, "steps", "1,10,50,100"));
    if (steps === undefined)
      throw new UsageError(
        `--steps takes increasing weights from 0 to 100, e.g. 1,10,50,100: ${JSON.stringify(stringFlag(ctx, "steps", ""))}`,
      );
    const intervalMs = parseDuration(stringFlag(ctx, "interval", "30s"));
    if (intervalMs === undefined)
      throw new UsageError(
        `--interval takes a duration such as 30s, 500ms or 2m: ${JSON.stringify(stringFlag(ctx, "interval", ""))}`,
      );
    const maxErrorRate = parseRate(stringFlag(ctx, "max-error-rate", "1%"));
    if (maxErrorRate === undefined) {
      throw new UsageError(
        `--max-error-rate takes a percentage from 0 to 100, e.g. 1%: ${JSON.stringify(stringFlag(ctx, "max-error-rate", ""))}`,
      );
    }
    for (const step of steps) percentToBuckets(step);
    const statusUrl = httpUrl("status-url", stringFlag(ctx, "status-url", DEFAULT_STATUS_URL));
    const canary = canaryOf(ctx);
    const plan = { steps, intervalMs, maxErrorRate, statusUrl };
    const setCanaryWeight = async (weight: number) => {
      await runEdit(ctx, `release: weight ${weight} --canary ${canary}`, (doc) => {
        const set = setWeight(doc, canary, weight);
        return { changed: set.was !== set.now, result: undefined };
      });
    };
    // A terminal gets one line per step, redrawn as it goes; a pipe gets each step's line once it has held.
    const live = process.stdout.isTTY === true && !ctx.json;
    let open = false;
    return async () => {
      const outcome = await runRelease(setCanaryWeight, plan, (e) => {
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
    };
  },
};
