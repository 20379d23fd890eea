/**
 * `gray status`: the routers' /gray/status as a table, and the release running, if any. With
 * several routers (--status-url repeated, --routers FILE) the counters are the fleet's sums, each
 * router's revision and weight on a line, and a router that does not answer is named (exit 1).
 * `--watch` shows the same every interval, as rates over the interval (../watch.ts).
 */
import { isStale, readRelease } from "../release-state.ts";
import { describeRelease } from "../release-state.ts";
import { type Command, type Context, UsageError, noArgs } from "../command.ts";
import { readFleet, routersHelp, routersOf, routersOptions, sumStatus } from "../fleet.ts";
import { durationFlag } from "../release.ts";
import { RouterError, renderStatus, routerLine } from "../status.ts";
import { AdminStore, StoreError } from "../store.ts";
import { watch } from "../watch.ts";
import type { ReleaseView } from "../watch-frame.ts";

/** The release in memcached; a store that does not answer quickly is said, not fatal. */
async function readReleaseView(ctx: Context): Promise<ReleaseView> {
  const store = new AdminStore(ctx.memcached, { timeoutMs: 1000 });
  try {
    const found = await readRelease(store, ctx.prefix);
    return found === undefined ? { none: true } : { state: found.state };
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    return { error: err.message };
  } finally {
    store.close();
  }
}

/** The release as a line, and as data for --json. */
async function releaseLine(ctx: Context): Promise<{ line: string; data: unknown }> {
  const view = await readReleaseView(ctx);
  if ("none" in view) return { line: "release: none running", data: null };
  if ("error" in view) return { line: `release: unknown (${view.error})`, data: { error: view.error } };
  return { line: `release: ${describeRelease(view.state)}`, data: { ...view.state, stale: isStale(view.state) } };
}

/** --watch until SIGINT or SIGTERM: exit 0, the last frame left on the screen. */
async function watchStatus(ctx: Context, urls: string[], intervalMs: number) {
  await watch(urls, intervalMs, {
    readFleet: () => readFleet(urls),
    readRelease: () => readReleaseView(ctx),
    write: (text) => process.stdout.write(text),
    isTTY: process.stdout.isTTY === true,
    size: () => ({ columns: process.stdout.columns, rows: process.stdout.rows }),
    onStop: (stop) => {
      const onInt = () => stop("SIGINT");
      const onTerm = () => stop("SIGTERM");
      // EPIPE and the like: whoever read the output (| head) is gone.
      const onError = () => stop("output closed");
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
      process.stdout.on("error", onError);
      return () => {
        process.off("SIGINT", onInt);
        process.off("SIGTERM", onTerm);
        process.stdout.off("error", onError);
      };
    },
  });
  // gray.ts prints the text and a newline: the terminal's prompt starts on a line of its own.
  return { text: "", data: null };
}

export const status: Command = {
  name: "status",
  usage: "gray status [--status-url URL ...] [--routers FILE] [--watch [--interval 1s]]",
  summary:
    "the routers' live counters (their /gray/status) as a table, summed over several; the release running, if any; --watch: rates every interval until Ctrl-C",
  flags: [
    ...routersHelp,
    "  --url URL              one router's status location, as --status-url (0.2's flag)",
    "  --watch, -w            show the routes' requests/s, 5xx rate, p50 and p99 every interval, until Ctrl-C (exit 0)",
    "  --interval D           --watch's interval: 1s, 500ms, 2m (default 1s)",
  ],
  options: {
    url: { type: "string" },
    ...routersOptions,
    watch: { type: "boolean", short: "w" },
    interval: { type: "string" },
  },
  prepare: (ctx) => {
    noArgs(ctx);
    const urls = routersOf(ctx, "url");
    if (ctx.values.watch === true) {
      if (ctx.json) throw new UsageError("--watch prints for people: --json is not taken with it");
      const intervalMs = durationFlag(ctx, "interval", "1s");
      return () => watchStatus(ctx, urls, intervalMs);
    }
    if (ctx.values.interval !== undefined) throw new UsageError("--interval goes with --watch");
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
      const routerLines = urls.map((u) =>
        routerLine(u, fleet.statuses.get(u), fleet.missing.find((m) => m.url === u)?.error),
      );
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
