/** `gray list`: flagged IPs and users (every key memcached holds, read by lru_crawler metadump), the ranges and the weight. */
import { formatAddress, parseAddress } from "../../../lua-src/gray/ip.ts";
import { USER_KEY, isUserId } from "../../../lua-src/gray/rules.ts";
import { type Command, noArgs } from "../command.ts";
import { canaryValueOf, valueHelp, valueOption } from "../shared-flags.ts";
import { type AdminStore, type KeyInfo, StoreError, withStore } from "../store.ts";
import { type Ignored, readStoredRules } from "../stored-rules.ts";

/** Only memcached itself can list its keys: a proxy in front of it (twemproxy, mcrouter) does not forward metadump. */
async function allKeys(store: AdminStore): Promise<KeyInfo[]> {
  try {
    return await store.keys();
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    throw new StoreError(
      `${err.message} (gray list finds flags with lru_crawler metadump, which only memcached itself answers: a proxy such as twemproxy does not forward it)`,
    );
  }
}

/** What `gray list --json` prints. */
export interface Listing {
  weight: number | null;
  ranges: string[];
  ips: { ip: string; expires: number | undefined }[];
  users: { user: string; expires: number | undefined }[];
  ignored: { weight: Ignored | null; ranges: Ignored[] };
}

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
        for (const { key, expires } of await allKeys(store)) {
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
        const rules = await readStoredRules(store, ctx.prefix);
        const now = Date.now() / 1000;
        const until = (e: number | undefined) =>
          e === undefined ? "" : `  (expires in ${Math.max(0, Math.round(e - now))} s)`;
        const weight =
          rules.weightText === undefined
            ? "not set (the router's configured weight applies)"
            : rules.weight === undefined
              ? `${JSON.stringify(rules.weightText)} ignored by the router: ${rules.weightIgnored!.why}`
              : `${rules.weight} %`;
        const ignoredRanges = rules.rangesIgnored.map(
          (r) => `  ${JSON.stringify(r.value)} ignored by the router: ${r.why}`,
        );
        const text = [
          `weight  ${weight}`,
          `ranges  ${rules.ranges.length ? rules.ranges.join(" ") : "(none in memcached)"}`,
          ...ignoredRanges,
          `ips     ${ips.length ? "" : "(none)"}`,
          ...ips.map((i) => `  ${i.ip}${until(i.expires)}`),
          `users   ${users.length ? "" : "(none)"}`,
          ...users.map((u) => `  ${u.user}${until(u.expires)}`),
        ].join("\n");
        const data: Listing = {
          weight: rules.weight ?? null,
          ranges: rules.ranges,
          ips,
          users,
          ignored: { weight: rules.weightIgnored ?? null, ranges: rules.rangesIgnored },
        };
        return { text, data };
      });
  },
};
