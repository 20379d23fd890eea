/** `gray remove-user`: users' entries taken out of the rules document (one revision). */
import { type Command, needArgs } from "../command.ts";
import { unflagWork } from "../flagging.ts";
import { canaryOption, onlyCanaryHelp, writeHelp, writeOptions } from "../rules-command.ts";
import { userTarget } from "../targets.ts";

export const removeUser: Command = {
  name: "remove-user",
  usage: "gray remove-user <id>... [--canary NAME]",
  summary: "stop sending users to their canary (one new revision of the rules document)",
  flags: [onlyCanaryHelp, ...writeHelp],
  options: { ...canaryOption, ...writeOptions },
  userKeys: true,
  prepare: (ctx) => {
    needArgs(ctx, "a user id");
    return unflagWork(ctx, "remove-user", ctx.args.map(userTarget));
  },
};
