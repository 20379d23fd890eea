/**
 * The rules document under load: how long a large revision takes to reach a router, the slowest
 * request while it loads against the same run with nothing loading, and what it costs in memory
 * (a worker's tables, and the copy in the shared dict, which is the text itself).
 *
 * The revision is encoded before the run and written with plain sets during it, so the writer
 * takes no CPU from nginx while the router loads; one worker, so every request meets the load.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { DEFAULT_CANARY, emptyDocument, formatPointer, chunkKey, pointerKey } from "../lua-src/gray/document.ts";
import type { MemcachedServer } from "../harness/memcached.ts";
import { anonRssKib, workersOf } from "../harness/proc.ts";
import type { FlagStore } from "../harness/flags.ts";
import { clearRules, setWeight } from "../harness/rules.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { withStore } from "../node-src/cli/store.ts";
import { flag } from "../node-src/rules/edit.ts";
import { encodeDocument } from "../node-src/rules/format.ts";
import { type Bed, startVariant } from "./measure.ts";
import { cyclingClients, router } from "./variants.ts";
import { wrk } from "./wrk.ts";

export interface DocumentLoadRun {
  entries: number;
  bytes: number;
  chunks: number;
  /** From the pointer's write to /gray/status showing the revision (10 ms polls). */
  loadMs: number;
  quiet: { p99Ms: number; maxMs: number };
  loading: { p99Ms: number; maxMs: number };
  /** The worker's RssAnon growth once the revision is in. */
  workerKib: number;
}

/** What a router asks memcached for over a run, idle and under load (ip_keys = false, 2 workers). */
export interface StoreLoad {
  seconds: number;
  workers: number;
  idle: { gets: number; requests: number };
  loaded: { gets: number; requests: number };
}

const RUN_S = 4;
const WRITE_AFTER_MS = 1500;
const CONNECTIONS = 8;

/** `count` IPv4 addresses in 10.0.0.0/8 (the format's size per entry is what matters). */
function addresses(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
}

async function untilLoaded(statusUrl: string, revision: number): Promise<number> {
  const started = performance.now();
  while ((await fetchStatus(statusUrl)).document.revision !== revision) {
    if (performance.now() - started > 30000) throw new Error(`revision ${revision} not loaded within 30 s`);
    await sleep(10);
  }
  return performance.now() - started;
}

export async function documentLoads(bed: Bed, memcached: MemcachedServer, sizes: number[]): Promise<DocumentLoadRun[]> {
  const nginx = await startVariant(bed, router({ ip_keys: false }));
  const runs: DocumentLoadRun[] = [];
  try {
    const [pid] = await workersOf(nginx);
    const url = `${nginx.url}/`;
    const statusUrl = `${nginx.url}/gray/status`;
    for (const entries of sizes) {
      await clearRules(memcached.address);
      await sleep(1500);
      await wrk({ url, seconds: 1, connections: CONNECTIONS });
      const quiet = await wrk({ url, seconds: RUN_S, connections: CONNECTIONS });
      const doc = emptyDocument();
      doc.revision = Date.now() + 10000;
      for (const ip of addresses(entries)) flag(doc, "ip", ip, DEFAULT_CANARY, 0);
      const encoded = encodeDocument(doc);
      const rssBefore = anonRssKib(pid!);
      const loading = wrk({ url, seconds: RUN_S, connections: CONNECTIONS });
      await sleep(WRITE_AFTER_MS);
      await withStore(memcached.address, async (store) => {
        for (const [i, chunk] of encoded.chunks.entries()) await store.set(chunkKey("", encoded.pointer, i), chunk);
        await store.set(pointerKey(""), formatPointer(encoded.pointer));
      });
      const loadMs = await untilLoaded(statusUrl, doc.revision);
      const during = await loading;
      await sleep(1000);
      runs.push({
        entries,
        bytes: encoded.pointer.bytes,
        chunks: encoded.chunks.length,
        loadMs,
        quiet: { p99Ms: quiet.p99Ms, maxMs: quiet.maxMs },
        loading: { p99Ms: during.p99Ms, maxMs: during.maxMs },
        workerKib: anonRssKib(pid!) - rssBefore,
      });
      process.stderr.write(
        `rules load ${entries}: ${loadMs.toFixed(0)} ms, max ${during.maxMs} ms (quiet ${quiet.maxMs} ms)\n`,
      );
    }
  } finally {
    await nginx.stop();
  }
  return runs;
}

/** memcached's cmd_get over `seconds` idle, then over `seconds` of wrk against 100,000 distinct clients. */
export async function storeLoad(
  bed: Bed,
  memcached: MemcachedServer,
  flags: FlagStore,
  seconds: number,
): Promise<StoreLoad> {
  const workers = 2;
  const nginx = await startVariant(
    bed,
    router({ ip_keys: false, trusted_proxies: ["127.0.0.1"] }, " reuseport"),
    workers,
  );
  const gets = async () => Number((await flags.stats()).cmd_get);
  try {
    await setWeight(memcached.address, "", 10);
    // Both workers started their timers (a worker starts it on its first request).
    await wrk({ url: `${nginx.url}/`, seconds: 1, connections: CONNECTIONS });
    let before = await gets();
    await sleep(seconds * 1000);
    const idle = { gets: (await gets()) - before, requests: 0 };
    before = await gets();
    const run = await wrk({ url: `${nginx.url}/`, seconds, connections: 32, script: cyclingClients(100000) });
    const loaded = { gets: (await gets()) - before, requests: run.requests };
    return { seconds, workers, idle, loaded };
  } finally {
    await nginx.stop();
  }
}
