/** `gray add-user`: flags user ids (`<prefix>uid:<id>`), as the router's user rule reads them. */
import { USER_KEY } from "../../../lua-src/gray/rules.ts";
import { type Command, needArgs } from "../command.ts";
import { canaryValueOf, ttlHelp, ttlOf, ttlOption, valueHelp, valueOption } from "../shared-flags.ts";
import { withStore } from "../store.ts";
import { checkUserId } from "../targets.ts";

export const addUser: Command = {
  name: "add-user",
  usage: "gray add-user <id>... [--ttl S] [--value V]",
  summary: "send users (by the id the router reads) to canary",
  flags: [ttlHelp, valueHelp],
  options: { ...ttlOption, ...valueOption },
  userKeys: true,
  prepare: (ctx) => {
    needArgs(ctx, "a user id");
    const ids = ctx.args.map(checkUserId);
    const ttl = ttlOf(ctx);
    const value = canaryValueOf(ctx);
    return () =>
      withStore(ctx.memcached, async (store) => {
        for (const id of ids) await store.set(ctx.prefix + USER_KEY + id, value, ttl);
        const text = ids
          .map((id) => `flagged user ${id}${ttl ? ` for ${ttl} s` : ""} (key ${ctx.prefix}${USER_KEY}${id})`)
          .join("\n");
        return { text, data: { flagged: ids, ttl } };
      });
  },
};
