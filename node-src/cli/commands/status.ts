/**
 * `gray status`: the routers' /gray/status as a table, and the release running, if any. With
 * several routers (--status-url repeated, --routers FILE) the counters are the fleet's sums, each
 * router's revision and weight on a line, and a router that does not answer is named (exit 1).
 */
import { isStale, readRelease } from "../release-state.ts";
import { describeRelease } from "../release-state.ts";
import { type Command, type Context, noArgs } from "../command.ts";
import { readFleet, routersHelp, routersOf, routersOptions, sumStatus } from "../fleet.ts";
import { RouterError, renderStatus } from "../status.ts";
import { AdminStore, StoreError } from "../store.ts";

/** The release in memcached, as a line; a store that does not answer quickly is said, not fatal. */
async function releaseLine(ctx: Context): Promise<{ line: string; data: unknown }> {
  const store = new AdminStore(ctx.memcached, { timeoutMs: 1000 });
  try {
    const found = await readRelease(store, ctx.prefix);
    if (found === undefined) return { line: "release: none running", data: null };
    return { line: `release: ${describeRelease(found.state)}`, data: { ...found.state, stale: isStale(found.state) } };
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    return { line: `release: unknown (${err.message})`, data: { error: err.message } };
  } finally {
    store.close();
  }
}

export const status: Command = {
  name: "status",
  usage: "gray status [--status-url URL ...] [--routers FILE]",
  summary:
    "the routers' live counters (their /gray/status) as a table, summed over several; the release running, if any",
  flags: [...routersHelp, "  --url URL              one router's status location, as --status-url (0.2's flag)"],
  options: { url: { type: "string" }, ...routersOptions },
  prepare: (ctx) => {
    noArgs(ctx);
    const urls = routersOf(ctx, "url");
    return async () => {
      const fleet = await readFleet(urls);
      const release = await releaseLine(ctx);
      const answered = urls.filter((u) => fleet.statuses.has(u)).map((u) => fleet.statuses.get(u)!);
      if (answered.length === 0) throw new RouterError(fleet.missing.map((m) => m.error).join("; "));
      if (urls.length === 1) {
        const s = answered[0]!;
        return { text: `${renderStatus(s)}\n${release.line}`, data: { ...s, release: release.data } };
      }
      const sum = sumStatus(answered);
      const routerLines = urls.map((u) => {
        const s = fleet.statuses.get(u);
        if (s === undefined) return `  ${u}  NO ANSWER: ${fleet.missing.find((m) => m.url === u)!.error}`;
        const weights = s.route_names
          .filter((r) => s.canaries[r] !== undefined)
          .map((r) => `${r} ${s.canaries[r]!.weight} %`)
          .join(", ");
        return `  ${u}  revision ${s.document.revision ?? "none"}, ${weights}, ${s.routes.stable?.requests ?? 0} + ${s.route_names
          .filter((r) => r !== "stable")
          .reduce((n, r) => n + (s.routes[r]?.requests ?? 0), 0)} requests`;
      });
      const head = `${answered.length} of ${urls.length} routers answered; counters summed over them`;
      return {
        text: [head, ...routerLines, "", renderStatus(sum), release.line].join("\n"),
        data: {
          routers: urls.map((u) => ({
            url: u,
            status: fleet.statuses.get(u) ?? null,
            error: fleet.missing.find((m) => m.url === u)?.error ?? null,
          })),
          sum,
          missing: fleet.missing,
          release: release.data,
        },
        code: fleet.missing.length > 0 ? 1 : 0,
        stdout: true,
      };
    };
  },
};
