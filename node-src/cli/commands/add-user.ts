/** `gray add-user`: user ids (as the router's user rule reads them) flagged for a canary (one revision). */
import { type Command, needArgs } from "../command.ts";
import { flagWork } from "../flagging.ts";
import { canaryHelp, canaryOption, writeHelp, writeOptions } from "../rules-command.ts";
import { canaryValueOf, legacyValueHelp, ttlHelp, ttlOption, valueOption } from "../shared-flags.ts";
import { userTarget } from "../targets.ts";

export const addUser: Command = {
  name: "add-user",
  usage: "gray add-user <id>... [--canary NAME] [--ttl S] [--init]",
  summary: "send users (by the id the router reads) to a canary (one new revision of the rules document)",
  flags: [canaryHelp, ttlHelp, ...writeHelp, legacyValueHelp],
  options: { ...canaryOption, ...ttlOption, ...writeOptions, ...valueOption },
  userKeys: true,
  prepare: (ctx) => {
    needArgs(ctx, "a user id");
    canaryValueOf(ctx);
    return flagWork(ctx, "add-user", ctx.args.map(userTarget));
  },
};
