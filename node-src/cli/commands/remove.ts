/** `gray remove`: IPs' and CIDRs' entries taken out of the rules document (one revision). */
import { type Command, needArgs } from "../command.ts";
import { unflagWork } from "../flagging.ts";
import { canaryOption, onlyCanaryHelp, writeHelp, writeOptions } from "../rules-command.ts";
import { parseTarget } from "../targets.ts";

export const remove: Command = {
  name: "remove",
  usage: "gray remove <ip|cidr>... [--canary NAME]",
  summary: "stop sending IPs or CIDRs to their canary (one new revision of the rules document)",
  flags: [onlyCanaryHelp, ...writeHelp],
  options: { ...canaryOption, ...writeOptions },
  prepare: (ctx) => {
    needArgs(ctx, "an IP or CIDR");
    return unflagWork(ctx, "remove", ctx.args.map(parseTarget));
  },
};
