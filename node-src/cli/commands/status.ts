/** `gray status`: the router's /gray/status as a table. */
import { type Command, noArgs, stringFlag } from "../command.ts";
import { httpUrl, urlHelp } from "../shared-flags.ts";
import { DEFAULT_STATUS_URL, fetchStatus, renderStatus } from "../status.ts";

export const status: Command = {
  name: "status",
  usage: "gray status [--url URL]",
  summary: "the router's live counters (its /gray/status) as a table",
  flags: [urlHelp],
  options: { url: { type: "string" } },
  prepare: (ctx) => {
    noArgs(ctx);
    const url = httpUrl("url", stringFlag(ctx, "url", DEFAULT_STATUS_URL));
    return async () => {
      const s = await fetchStatus(url);
      return { text: renderStatus(s), data: s };
    };
  },
};
