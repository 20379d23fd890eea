/** `gray add`: IPs get a per-IP flag, CIDRs join the range list. */
import { RANGES_KEY } from "../../../lua-src/gray/rules.ts";
import { type Command, UsageError, needArgs } from "../command.ts";
import { editRanges } from "../range-list.ts";
import { canaryValueOf, ttlHelp, ttlOf, ttlOption, valueHelp, valueOption } from "../shared-flags.ts";
import { withStore } from "../store.ts";
import { parseTarget } from "../targets.ts";

export const add: Command = {
  name: "add",
  usage: "gray add <ip|cidr>... [--ttl S] [--value V]",
  summary: "send IPs (per-IP flags) or CIDRs (the range list) to canary",
  flags: [ttlHelp, valueHelp],
  options: { ...ttlOption, ...valueOption },
  prepare: (ctx) => {
    needArgs(ctx, "an IP or CIDR");
    const targets = ctx.args.map(parseTarget);
    const ttl = ttlOf(ctx);
    const value = canaryValueOf(ctx);
    const ranges = targets.filter((t) => t.kind === "range").map((t) => t.text);
    if (ranges.length > 0 && ttl > 0) throw new UsageError("--ttl applies to IPs and user ids, not to ranges");
    return () =>
      withStore(ctx.memcached, async (store) => {
        const ips = targets.filter((t) => t.kind === "ip").map((t) => t.text);
        for (const ip of ips) await store.set(ctx.prefix + ip, value, ttl);
        const all = ranges.length > 0 ? await editRanges(store, ctx.prefix + RANGES_KEY, ranges, []) : undefined;
        const lines = ips.map((ip) => `flagged ${ip}${ttl ? ` for ${ttl} s` : ""} (key ${ctx.prefix}${ip})`);
        if (all) lines.push(`ranges now: ${all.join(" ")}`);
        return { text: lines.join("\n"), data: { flagged: ips, ttl, ranges: all } };
      });
  },
};
