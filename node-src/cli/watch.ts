/**
 * `gray status --watch`'s loop: read the routers and the release every interval, render a frame
 * (watch-frame.ts), and place it. On a terminal the frame is redrawn in place (cursor home, each
 * line cleared to its end, the rest of the screen cleared; the cursor hidden meanwhile, shown
 * again on the way out); anywhere else (a pipe, a file, CI) frames follow one another as plain
 * text, with no escape code at all. Ends on SIGINT or SIGTERM (or its output closing), leaving
 * the cursor shown. Everything it touches comes through WatchIO, so tests drive it without a terminal.
 */
import type { FleetReading } from "./fleet.ts";
import { type ReleaseView, renderFrame } from "./watch-frame.ts";

export const HIDE_CURSOR = "\x1b[?25l";
export const SHOW_CURSOR = "\x1b[?25h";
const HOME = "\x1b[H";
const CLEAR_SCREEN = "\x1b[2J";
const CLEAR_LINE_END = "\x1b[K";
const CLEAR_BELOW = "\x1b[J";

export interface WatchIO {
  readFleet(): Promise<FleetReading>;
  readRelease(): Promise<ReleaseView>;
  write(text: string): void;
  /** Redraw in place (a terminal), or print frame after frame. */
  isTTY: boolean;
  /** The terminal's size, when known: a frame is cut to it (lines to the width, then to the height) so a redraw never scrolls. */
  size(): { columns?: number; rows?: number };
  /** Calls `stop` on SIGINT, SIGTERM, or the output closing; returns what undoes that. */
  onStop(stop: (why: string) => void): () => void;
}

/**
 * A frame for a terminal: home, each line cut to the width and cleared to its end, the lines past
 * the height left out (the last row stays free for the cursor), the rest of the screen cleared.
 */
export function placeFrame(frame: string, size: { columns?: number; rows?: number }): string {
  const { columns, rows } = size;
  let lines = frame.replace(/\n$/, "").split("\n");
  if (rows !== undefined && rows > 1 && lines.length > rows - 1) lines = lines.slice(0, rows - 1);
  const fit = (l: string) =>
    columns !== undefined && columns > 0 && l.length >= columns ? l.slice(0, columns - 1) : l;
  return HOME + lines.map((l) => fit(l) + CLEAR_LINE_END).join("\n") + "\n" + CLEAR_BELOW;
}

/** Watches until stopped; resolves with why it stopped (a signal's name, or "output closed"). */
export async function watch(urls: string[], intervalMs: number, io: WatchIO): Promise<string> {
  let stopped: string | undefined;
  let wake: () => void = () => undefined;
  const stoppedNow = new Promise<void>((resolve) => (wake = resolve));
  const off = io.onStop((why) => {
    stopped ??= why;
    wake();
  });
  if (io.isTTY) io.write(HIDE_CURSOR + CLEAR_SCREEN);
  let timer: NodeJS.Timeout | undefined;
  try {
    let before: FleetReading | undefined;
    let first = true;
    while (stopped === undefined) {
      const started = Date.now();
      // A router or the store slow to answer (up to their timeouts) does not hold up Ctrl-C.
      const read = await Promise.race([Promise.all([io.readFleet(), io.readRelease()]), stoppedNow]);
      if (stopped !== undefined || read === undefined) break;
      const [now, release] = read;
      const frame = renderFrame({ urls, intervalMs, before, now, release });
      io.write(io.isTTY ? placeFrame(frame, io.size()) : (first ? "" : "\n") + frame);
      first = false;
      before = now;
      const wait = Math.max(0, intervalMs - (Date.now() - started));
      await Promise.race([new Promise<void>((resolve) => (timer = setTimeout(resolve, wait))), stoppedNow]);
      clearTimeout(timer);
    }
  } finally {
    clearTimeout(timer);
    off();
    if (io.isTTY) io.write(SHOW_CURSOR);
  }
  return stopped ?? "stopped";
}
