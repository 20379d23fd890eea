/**
 * The load a fleet puts on its store: 2 routers × 2 workers behind nutcracker, 3 memcached nodes,
 * ip_keys = false. memcached's cmd_get (keys asked for) summed over the nodes, per second, while
 * the fleet is idle, under a light load, and while wrk drives each router flat out (131,072 distinct
 * clients through X-Real-IP): with the rules in memory it follows time and workers, not requests. What to expect:
 * routers × workers × (1000 / cache_ttl_ms) rules checks a second, of CHECK_KEYS keys each (the
 * pointer's 3 copies and the release key).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Fleet } from "../harness/fleet.ts";
import { get } from "../harness/http.ts";
import { Load, loopbackClients } from "../harness/load.ts";
import type { Runtime } from "../harness/runtime.ts";
import { editDocument } from "../harness/rules.ts";
import { CHECK_KEYS } from "../lua-src/gray/status.ts";
import { flag } from "../node-src/rules/edit.ts";
import { cyclingClients } from "./variants.ts";
import { wrk } from "./wrk.ts";

export interface StoreLoadRow {
  phase: string;
  /** Requests per second over both routers (0 when idle). */
  rps: number;
  getsPerS: number;
  touchesPerS: number;
}

export interface StoreLoad {
  routers: number;
  workers: number;
  cacheTtlMs: number;
  /** routers × workers × (1000 / cache_ttl_ms) × CHECK_KEYS. */
  expectedGetsPerS: number;
  rows: StoreLoadRow[];
}

const ROUTERS = 2;
const WORKERS = 2;
const CACHE_TTL_MS = 500;

async function storeCounters(fleet: Fleet): Promise<{ gets: number; touches: number; at: number }> {
  const stats = await Promise.all(fleet.nodes.map((n) => n.stats()));
  const sum = (name: string) => stats.reduce((n, s) => n + Number(s[name] ?? 0), 0);
  return { gets: sum("cmd_get"), touches: sum("cmd_touch"), at: performance.now() };
}

export async function fleetStoreLoad(runtime: Runtime, seconds: number): Promise<StoreLoad> {
  const fleet = await Fleet.start({
    runtime,
    routers: ROUTERS,
    nodes: 3,
    options: { ip_keys: false, cache_ttl_ms: CACHE_TTL_MS, trusted_proxies: ["127.0.0.1"] },
    // reuseport: the kernel spreads new connections over both workers, so each starts its timer (at its first request).
    extras: { workers: WORKERS, reuseport: true },
  });
  try {
    await editDocument(fleet.address, "", "bench: fleet", (doc) => {
      for (let i = 0; i < 10000; i++) flag(doc, "ip", `10.8.${i >> 8}.${i & 255}`, "canary", 0);
    });
    for (const router of fleet.routers)
      for (let i = 0; i < 64; i++) await get(router.url, { from: `127.104.0.${i + 1}`, fresh: true });
    await sleep(2 * CACHE_TTL_MS);

    const rows: StoreLoadRow[] = [];
    const measure = async (phase: string, drive: () => Promise<number>) => {
      const before = await storeCounters(fleet);
      const requests = await drive();
      const after = await storeCounters(fleet);
      const s = (after.at - before.at) / 1000;
      rows.push({
        phase,
        rps: requests / s,
        getsPerS: (after.gets - before.gets) / s,
        touchesPerS: (after.touches - before.touches) / s,
      });
    };
    const script = cyclingClients();
    const under = (connections: number) => async () => {
      const runs = await Promise.all(fleet.routers.map((r) => wrk({ url: `${r.url}/`, seconds, connections, script })));
      return runs.reduce((n, r) => n + r.requests, 0);
    };
    await measure("idle", async () => {
      await sleep(seconds * 1000);
      return 0;
    });
    await measure("8 clients per router, 20 requests/s each", async () => {
      const loads = fleet.routers.map((r, i) =>
        Load.start({ url: `${r.url}/`, sources: loopbackClients(8, 105 + i), durationMs: seconds * 1000, thinkMs: 50 }),
      );
      const done = await Promise.all(loads.map((l) => l.done()));
      return done.reduce((n, d) => n + d.sent, 0);
    });
    await measure("wrk, 16 connections per router", under(16));
    return {
      routers: ROUTERS,
      workers: WORKERS,
      cacheTtlMs: CACHE_TTL_MS,
      expectedGetsPerS: ROUTERS * WORKERS * (1000 / CACHE_TTL_MS) * CHECK_KEYS,
      rows,
    };
  } finally {
    await fleet.stop();
  }
}
