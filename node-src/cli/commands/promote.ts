/**
 * `gray promote`: the canary becomes stable in one revision (../../rules/promote.ts), live on
 * every router, no reload; `--undo` swaps back. The targets in force are read from the routers'
 * /gray/status (their conf's names, or the document's after an earlier promote): every router
 * must answer and agree, or nothing is written.
 */
import { DEFAULT_CANARY } from "../../../lua-src/gray/document.ts";
import type { Status } from "../../../lua-src/gray/status.ts";
import { type Target, promote as promoteEdit, undoPromote } from "../../rules/promote.ts";
import { type Command, UsageError, noArgs } from "../command.ts";
import { readFleet, routersHelp, routersOf, routersOptions } from "../fleet.ts";
import { canaryHelp, canaryOf, canaryOption, changeText, runEdit, writeHelp, writeOptions } from "../rules-command.ts";
import { RouterError } from "../status.ts";

const show = (t: Target) => `${t.upstream} (${t.location})`;

/** stable's and the canary's targets in force, the same on every router. */
function targetsOf(statuses: Map<string, Status>, canary: string): { stable: Target; canary: Target } {
  let agreed: { stable: Target; canary: Target; url: string } | undefined;
  for (const [url, s] of statuses) {
    if (s.stable_target === undefined)
      throw new RouterError(`${url} does not report stable's target (a router older than 0.3): upgrade it first`);
    const c = s.canaries[canary];
    if (c === undefined) throw new UsageError(`${url} has no canary ${canary} in its canaries option`);
    if (canary === DEFAULT_CANARY && s.config.ranges.length > 0)
      throw new UsageError(
        `${url}'s configure() has ranges for canary (${s.config.ranges.join(", ")}): after a promote they would send those clients to the old version; move them into the document (gray add) or remove them first`,
      );
    const mine = { stable: { ...s.stable_target }, canary: { upstream: c.upstream, location: c.location }, url };
    if (agreed === undefined) agreed = mine;
    else if (JSON.stringify([mine.stable, mine.canary]) !== JSON.stringify([agreed.stable, agreed.canary]))
      throw new RouterError(
        `routers disagree on the targets: ${agreed.url} has stable ${show(agreed.stable)}, ${canary} ${show(agreed.canary)}; ${url} has ${show(mine.stable)}, ${show(mine.canary)}`,
      );
  }
  return { stable: agreed!.stable, canary: agreed!.canary };
}

export const promote: Command = {
  name: "promote",
  usage: "gray promote [--canary NAME] [--undo] [--status-url URL ...]",
  summary:
    "make the canary the new stable in one revision (targets swapped, its weight 0, its entries cleared), live, no reload; --undo swaps back",
  flags: [
    "  --undo                 swap back: the canary takes the weight no other canary holds, so nobody changes version",
    ...routersHelp,
    canaryHelp,
    ...writeHelp,
  ],
  options: { ...canaryOption, ...writeOptions, ...routersOptions, undo: { type: "boolean" } },
  prepare: (ctx) => {
    noArgs(ctx);
    const canary = canaryOf(ctx);
    const routers = routersOf(ctx);
    const undo = ctx.values.undo === true;
    return async () => {
      const fleet = await readFleet(routers);
      if (fleet.missing.length > 0)
        throw new RouterError(
          `nothing written: every router must answer, to agree on the targets: ${fleet.missing.map((m) => m.error).join("; ")}`,
        );
      const now = targetsOf(fleet.statuses, canary);
      const change = changeText(ctx, undo ? "promote --undo" : "promote", ["--canary", canary]);
      if (undo) {
        const done = await runEdit(ctx, change, (doc) => {
          const r = undoPromote(doc, canary, now);
          return { changed: r !== undefined, result: r };
        });
        if (done.result === undefined)
          throw new UsageError(
            `no promote of ${canary} to undo: the document names no targets for stable and ${canary}`,
          );
        const r = done.result;
        return {
          text: `undone: stable is ${show(r.stable)} again, ${canary} ${show(r.canary)} at weight ${r.weight} % (nobody moved; gray weight 0 --canary ${canary} sends them back), revision ${done.revision}`,
          data: {
            canary,
            undo: true,
            weight: r.weight,
            stable: r.stable,
            canary_target: r.canary,
            revision: done.revision,
          },
        };
      }
      const done = await runEdit(ctx, change, (doc) => ({ changed: true, result: promoteEdit(doc, canary, now) }));
      const r = done.result;
      const moved =
        r.was < 100
          ? ` (${canary} was at ${r.was} %: the ${Math.round((100 - r.was) * 1000) / 1000} % on stable moved to the new version now)`
          : "";
      return {
        text: `promoted ${canary}: stable is now ${show(r.stable)}, ${canary} ${show(r.canary)} at weight 0, ${r.cleared} entr${r.cleared === 1 ? "y" : "ies"} cleared${moved}, revision ${done.revision}`,
        data: {
          canary,
          undo: false,
          was: r.was,
          cleared: r.cleared,
          stable: r.stable,
          canary_target: r.canary,
          revision: done.revision,
        },
      };
    };
  },
};
