/** `gray status`: the router's /gray/status as a table, and what in the store the router ignores. */
import { type Command, noArgs, stringFlag } from "../command.ts";
import { httpUrl, urlHelp } from "../shared-flags.ts";
import { DEFAULT_STATUS_URL, fetchStatus, renderStatus } from "../status.ts";
import { withStore } from "../store.ts";
import { ignoredLines, readStoredRules } from "../stored-rules.ts";

/** The router reports its store as host:port, an IPv6 host unbracketed. */
function storeAddress(reported: string): string {
  const m = /^(.*:.*):(\d+)$/.exec(reported);
  return m && !reported.startsWith("[") ? `[${m[1]}]:${m[2]}` : reported;
}

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
      // The store the router reads, unless told otherwise; its stored weight and ranges, to say what it ignores.
      const memcached = ctx.memcachedGiven ? ctx.memcached : storeAddress(s.memcached);
      const rules = await withStore(memcached, (store) => readStoredRules(store, s.config.key_prefix));
      const ignored = ignoredLines(rules, s.config.key_prefix);
      const text = renderStatus(s) + (ignored.length ? `\n${ignored.join("\n")}\n` : "");
      return { text, data: { ...s, ignored: { weight: rules.weightIgnored ?? null, ranges: rules.rangesIgnored } } };
    };
  },
};
