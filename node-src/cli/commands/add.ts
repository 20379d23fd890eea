/** `gray add`: IPs and CIDRs flagged for a canary in the rules document (one revision). */
import { type Command, needArgs } from "../command.ts";
import { flagWork } from "../flagging.ts";
import { canaryHelp, canaryOption, writeHelp, writeOptions } from "../rules-command.ts";
import { canaryValueOf, legacyValueHelp, ttlHelp, ttlOption, valueOption } from "../shared-flags.ts";
import { parseTarget } from "../targets.ts";

export const add: Command = {
  name: "add",
  usage: "gray add <ip|cidr>... [--canary NAME] [--ttl S] [--init]",
  summary: "send IPs or CIDRs to a canary (one new revision of the rules document)",
  flags: [canaryHelp, ttlHelp, ...writeHelp, legacyValueHelp],
  options: { ...canaryOption, ...ttlOption, ...writeOptions, ...valueOption },
  prepare: (ctx) => {
    needArgs(ctx, "an IP or CIDR");
    canaryValueOf(ctx);
    return flagWork(ctx, "add", ctx.args.map(parseTarget));
  },
};
