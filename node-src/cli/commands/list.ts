/** `gray list`: flagged IPs and users (every key memcached holds, read by lru_crawler metadump), the ranges and the weight. */
import { formatAddress, formatCidr, parseAddress } from "../../../lua-src/gray/ip.ts";
import { parseRangeList } from "../../../lua-src/gray/ranges.ts";
import { RANGES_KEY, USER_KEY, WEIGHT_KEY, isUserId } from "../../../lua-src/gray/rules.ts";
import { type Command, noArgs } from "../command.ts";
import { readRanges } from "../range-list.ts";
import { canaryValueOf, valueHelp, valueOption } from "../shared-flags.ts";
import { withStore } from "../store.ts";

export const list: Command = {
  name: "list",
  usage: "gray list [--value V]",
  summary: "show flagged IPs and users, the ranges and the weight",
  flags: [valueHelp],
  options: { ...valueOption },
  prepare: (ctx) => {
    noArgs(ctx);
    const value = canaryValueOf(ctx);
    return () =>
      withStore(ctx.memcached, async (store) => {
        const ips: { ip: string; expires: number | undefined }[] = [];
        const users: { user: string; expires: number | undefined }[] = [];
        for (const { key, expires } of await store.keys()) {
          if (!key.startsWith(ctx.prefix)) continue;
          const rest = key.slice(ctx.prefix.length);
          const addr = parseAddress(rest);
          const isIp = addr !== undefined && formatAddress(addr) === rest;
          const isUser = rest.startsWith(USER_KEY) && isUserId(rest.slice(USER_KEY.length));
          if (!isIp && !isUser) continue;
          if ((await store.get(key)) !== value) continue;
          if (isIp) ips.push({ ip: rest, expires });
          else users.push({ user: rest.slice(USER_KEY.length), expires });
        }
        const ranges = parseRangeList(await readRanges(store, ctx.prefix + RANGES_KEY)).cidrs.map(formatCidr);
        const weight = await store.get(ctx.prefix + WEIGHT_KEY);
        const now = Date.now() / 1000;
        const until = (e: number | undefined) => (e === undefined ? "" : `  (expires in ${Math.max(0, Math.round(e - now))} s)`);
        const text = [
          `weight  ${weight === undefined ? "not set (the router's configured weight applies)" : `${weight} %`}`,
          `ranges  ${ranges.length ? ranges.join(" ") : "(none in memcached)"}`,
          `ips     ${ips.length ? "" : "(none)"}`,
          ...ips.map((i) => `  ${i.ip}${until(i.expires)}`),
          `users   ${users.length ? "" : "(none)"}`,
          ...users.map((u) => `  ${u.user}${until(u.expires)}`),
        ].join("\n");
        return { text, data: { weight: weight === undefined ? null : Number(weight), ranges, ips, users } };
      });
  },
};
