/**
 * Memory over a long run: one worker's anonymous RSS sampled while it serves `total` requests,
 * and the least-squares slope after warm-up. A leak of one byte per request would add about
 * 1 MiB per million requests; a healthy worker's heap saws up and down by a few hundred KiB
 * around a flat line as LuaJIT collects.
 */
import type { NginxServer } from "../harness/nginx.ts";
import { anonRssKib, workersOf } from "../harness/proc.ts";
import { wrk } from "./wrk.ts";

export interface MemoryRun {
  variant: string;
  requests: number;
  samples: { requests: number; rssKib: number }[];
  /** Bytes per request, fitted over the samples after the first tenth of the run. */
  slopeBytesPerRequest: number;
  firstKib: number;
  lastKib: number;
}

function slope(points: { x: number; y: number }[]): number {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const sxy = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const sxx = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return sxx === 0 ? 0 : sxy / sxx;
}

export async function memoryRun(
  variant: string,
  nginx: NginxServer,
  total: number,
  connections: number,
  script?: string,
): Promise<MemoryRun> {
  const pids = await workersOf(nginx);
  if (pids.length !== 1) throw new Error(`memory run wants one worker, found ${pids.length}`);
  const pid = pids[0]!;
  const samples = [{ requests: 0, rssKib: anonRssKib(pid) }];
  let requests = 0;
  while (requests < total) {
    const r = await wrk({ url: `${nginx.url}/`, seconds: 2, connections, script });
    requests += r.requests;
    samples.push({ requests, rssKib: anonRssKib(pid) });
    process.stderr.write(`memory ${variant}: ${requests} requests, RssAnon ${samples.at(-1)!.rssKib} KiB\n`);
  }
  const settled = samples.filter((s) => s.requests >= total / 10).map((s) => ({ x: s.requests, y: s.rssKib }));
  return {
    variant,
    requests,
    samples,
    slopeBytesPerRequest: slope(settled) * 1024,
    firstKib: settled[0]!.y,
    lastKib: settled.at(-1)!.y,
  };
}
