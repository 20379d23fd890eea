/** `gray remove`: per-IP flags deleted, CIDRs taken out of the range list. */
import { RANGES_KEY } from "../../../lua-src/gray/rules.ts";
import { type Command, needArgs } from "../command.ts";
import { editRanges } from "../range-list.ts";
import { withStore } from "../store.ts";
import { parseTarget } from "../targets.ts";

export const remove: Command = {
  name: "remove",
  usage: "gray remove <ip|cidr>...",
  summary: "stop sending IPs or CIDRs to canary",
  options: {},
  prepare: (ctx) => {
    needArgs(ctx, "an IP or CIDR");
    const targets = ctx.args.map(parseTarget);
    return () =>
      withStore(ctx.memcached, async (store) => {
        const lines: string[] = [];
        const removed: string[] = [];
        for (const t of targets.filter((x) => x.kind === "ip")) {
          const was = await store.delete(ctx.prefix + t.text);
          if (was) removed.push(t.text);
          lines.push(was ? `unflagged ${t.text}` : `${t.text} was not flagged`);
        }
        const ranges = targets.filter((t) => t.kind === "range").map((t) => t.text);
        const all = ranges.length > 0 ? await editRanges(store, ctx.prefix + RANGES_KEY, [], ranges) : undefined;
        if (all) lines.push(`ranges now: ${all.length ? all.join(" ") : "(none)"}`);
        return { text: lines.join("\n"), data: { removed, ranges: all } };
      });
  },
};
