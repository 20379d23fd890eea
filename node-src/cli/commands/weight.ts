/** `gray weight`: shows or sets `<prefix>gray:weight`, the percentage of remaining traffic sent to canary. */
import { WEIGHT_KEY, parseWeight } from "../../../lua-src/gray/rules.ts";
import { type Command, UsageError } from "../command.ts";
import { withStore } from "../store.ts";

export const weight: Command = {
  name: "weight",
  usage: "gray weight [PERCENT]",
  summary: "show or set the share of remaining traffic sent to canary (0-100, decimals allowed)",
  options: {},
  prepare: (ctx) => {
    if (ctx.args.length > 1) throw new UsageError("give one weight");
    const raw = ctx.args[0];
    const wanted = raw === undefined ? undefined : parseWeight(raw.replace(/%$/, ""));
    if (raw !== undefined && wanted === undefined)
      throw new UsageError(`weight must be a number from 0 to 100, e.g. 12.5: ${JSON.stringify(raw)}`);
    const key = ctx.prefix + WEIGHT_KEY;
    return () =>
      withStore(ctx.memcached, async (store) => {
        const before = await store.get(key);
        const was = before === undefined ? "not set" : `${before} %`;
        if (wanted === undefined)
          return { text: `weight ${was}`, data: { weight: before === undefined ? null : Number(before) } };
        await store.set(key, `${wanted}`);
        return {
          text: `weight ${wanted} % (was ${was})`,
          data: { weight: wanted, was: before === undefined ? null : Number(before) },
        };
      });
  },
};
