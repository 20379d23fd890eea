/** `gray explain`: which version a request would get, by the router's own decision code (../explain.ts). */
import { parseAddress } from "../../../lua-src/gray/ip.ts";
import { type Command, UsageError, stringFlag } from "../command.ts";
import { explain as explainRequest, routerOptions } from "../explain.ts";
import { httpUrl, urlHelp } from "../shared-flags.ts";
import { DEFAULT_STATUS_URL, fetchStatus } from "../status.ts";
import { withStore } from "../store.ts";
import { checkUserId } from "../targets.ts";

export const explain: Command = {
  name: "explain",
  usage: "gray explain <ip> [--user ID] [--header K:V]... [--cookie K=V]... [--url URL]",
  summary: "which version a request would get, and the rule that decides (the router's own code)",
  flags: [
    "  --user ID              the request's user id (sent as the router's user_header or user_cookie)",
    "  --header K:V           a request header (repeatable), e.g. --header 'X-Gray: always'",
    "  --cookie K=V           a request cookie (repeatable)",
    urlHelp + " (its rule options are used)",
  ],
  options: {
    user: { type: "string" },
    header: { type: "string", multiple: true },
    cookie: { type: "string", multiple: true },
    url: { type: "string" },
  },
  prepare: (ctx) => {
    if (ctx.args.length !== 1) throw new UsageError("give one client IP");
    const ip = ctx.args[0]!;
    if (parseAddress(ip) === undefined) throw new UsageError(`not an IP address: ${JSON.stringify(ip)}`);
    const rawUser = stringFlag(ctx, "user");
    const user = rawUser === undefined ? undefined : checkUserId(rawUser);
    const pairs = (name: string, sep: string) =>
      ((ctx.values[name] as string[] | undefined) ?? []).map((p): [string, string] => {
        const at = p.indexOf(sep);
        if (at <= 0) throw new UsageError(`--${name} takes NAME${sep}VALUE: ${JSON.stringify(p)}`);
        return [p.slice(0, at).trim(), p.slice(at + 1).trim()];
      });
    const headers = pairs("header", ":");
    const cookies = pairs("cookie", "=");
    const url = httpUrl("url", stringFlag(ctx, "url", DEFAULT_STATUS_URL));
    return async () => {
      const { config } = await fetchStatus(url);
      if (ctx.values.prefix !== undefined && ctx.prefix !== config.key_prefix) {
        throw new UsageError(
          `--prefix ${JSON.stringify(ctx.prefix)} differs from the router's key_prefix ${JSON.stringify(config.key_prefix)}`,
        );
      }
      const e = await withStore(ctx.memcached, (store) =>
        explainRequest(store, routerOptions(config), { ip, user, headers, cookies }),
      );
      return { text: `${e.route}  (rule ${e.rule}: ${e.why})`, data: e };
    };
  },
};
