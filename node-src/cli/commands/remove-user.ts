/** `gray remove-user`: deletes user flags. */
import { USER_KEY } from "../../../lua-src/gray/rules.ts";
import { type Command, needArgs } from "../command.ts";
import { withStore } from "../store.ts";
import { checkUserId } from "../targets.ts";

export const removeUser: Command = {
  name: "remove-user",
  usage: "gray remove-user <id>...",
  summary: "stop sending users to canary",
  options: {},
  userKeys: true,
  prepare: (ctx) => {
    needArgs(ctx, "a user id");
    const ids = ctx.args.map(checkUserId);
    return () =>
      withStore(ctx.memcached, async (store) => {
        const removed: string[] = [];
        const lines: string[] = [];
        for (const id of ids) {
          const was = await store.delete(ctx.prefix + USER_KEY + id);
          if (was) removed.push(id);
          lines.push(was ? `unflagged user ${id}` : `user ${id} was not flagged`);
        }
        return { text: lines.join("\n"), data: { removed } };
      });
  },
};
