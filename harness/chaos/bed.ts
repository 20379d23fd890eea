/**
 * What the chaos cases act on: a tiny memcached, a TCP proxy in front of it, a router (two
 * workers) behind the proxy, and the flags. The proxy counts the router's store connections,
 * delays replies for the slow case and swaps in a garbage-answering fake for the garbage case.
 */
import { FlagStore } from "../flags.ts";
import { get } from "../http.ts";
import { Load, loopbackClients } from "../load.ts";
import { MemcachedServer } from "../memcached.ts";
import { anonRssKib, workersOf } from "../proc.ts";
import { flagIps } from "../rules.ts";
import type { Runtime } from "../runtime.ts";
import { RouterStack } from "../stack.ts";
import { TcpProxy } from "../tcp-proxy.ts";

/** The router's memcached timeout_ms (its default): each connect, send and receive is bounded by it. */
export const TIMEOUT_MS = 50;
export const WORKERS = 2;
/** memcached.pool_size (its default): idle connections kept per worker. */
export const POOL_SIZE = 32;
/**
 * Store connections the router may hold: per worker, its lookups' pool and the rules check's own
 * pool of one (snapshot.ts), which a 60 s soak showed in use beside a full lookup pool.
 */
export const STORE_CONNECTIONS_BOUND = WORKERS * (POOL_SIZE + 1);
/** Cached lookups expire quickly, so a recovered store is asked again soon (and a negative entry is short-lived). */
const CACHE_TTL_MS = 200;
/** memcached -m: the smallest it takes with its default 1 MB item size limit (-m 1 is refused). */
export const TINY_MEMCACHED_MB = 2;
/** The load: clients on distinct 127.103.0.x addresses with keep-alive; the odd ones are flagged canary. */
export const CLIENTS = 32;
export const MAIN_CLIENTS = loopbackClients(CLIENTS, 103);
export const FLAGGED = MAIN_CLIENTS.filter((_, i) => i % 2 === 0);
/** A client flagged in the rules document, not by a seed key: routed from memory, so canary whatever the store does. */
export const IN_DOCUMENT = "127.106.0.1";

export class ChaosBed {
  private nextProbe = 1;

  private constructor(
    readonly memcached: MemcachedServer,
    readonly proxy: TcpProxy,
    readonly router: RouterStack,
    readonly flags: FlagStore,
    readonly workers: number[],
  ) {}

  static async start(runtime: Runtime, dictSize?: string): Promise<ChaosBed> {
    const memcached = await MemcachedServer.start(runtime, { memoryMb: TINY_MEMCACHED_MB });
    const proxy = await TcpProxy.start(memcached);
    const flags = new FlagStore(memcached.address);
    let router: RouterStack | undefined;
    try {
      router = await RouterStack.start({
        runtime,
        memcached: proxy,
        workers: WORKERS,
        cacheDictSize: dictSize,
        // Trusts loopback peers' X-Real-IP: the dict case's load poses as thousands of clients that way.
        options: {
          memcached: { timeout_ms: TIMEOUT_MS, pool_size: POOL_SIZE },
          cache_ttl_ms: CACHE_TTL_MS,
          trusted_proxies: ["127.0.0.0/8"],
        },
      });
      const workers = await workersOf(router.nginx, WORKERS);
      if (workers.length !== WORKERS) throw new Error(`expected ${WORKERS} workers, error.log shows ${workers.length}`);
      const bed = new ChaosBed(memcached, proxy, router, flags, workers);
      await bed.flagClients();
      await flagIps(memcached.address, "", [IN_DOCUMENT]);
      await bed.untilRoutes(IN_DOCUMENT, "canary");
      // Warm-up: the workers' Lua heaps, caches and pools settle before the first memory sample.
      await Load.start({ url: router.url, sources: MAIN_CLIENTS, durationMs: 1000 }).done();
      return bed;
    } catch (err) {
      await router?.stop();
      flags.close();
      await proxy.stop();
      await memcached.stop();
      throw err;
    }
  }

  /** (Re)stores the flags: the flagged main clients and every probe address handed out so far. */
  async flagClients(): Promise<void> {
    for (const key of [...FLAGGED, ...this.probesSoFar()]) await this.flags.set(key);
  }

  /** Until `from` is answered `route` 20 times in a row on new connections (both workers), within 5 s. */
  async untilRoutes(from: string, route: string): Promise<void> {
    const deadline = Date.now() + 5000;
    for (let inARow = 0; inARow < 20;) {
      if (Date.now() > deadline) throw new Error(`${from} not routed to ${route} within 5 s`);
      const reply = await get(this.router.url, { from, fresh: true });
      inARow = reply.body.trim() === route ? inARow + 1 : 0;
    }
  }

  /** A flagged client address no request has come from yet, so the router has nothing cached for it. */
  async newProbe(): Promise<string> {
    const address = `127.104.0.${this.nextProbe++}`;
    await this.flags.set(address);
    return address;
  }

  private probesSoFar(): string[] {
    return Array.from({ length: this.nextProbe - 1 }, (_, i) => `127.104.0.${i + 1}`);
  }

  /**
   * Forcible evictions the router saw when writing its cache dict: `cache_evictions` in its
   * /gray/status JSON, read as sent. A router that does not report it reads 0, so the dict
   * case then fails instead of passing unseen.
   */
  async cacheEvictions(): Promise<number> {
    const reply = await get(this.router.statusUrl);
    if (reply.status !== 200) throw new Error(`/gray/status answered ${reply.status}: ${reply.body}`);
    const { cache_evictions: evictions } = JSON.parse(reply.body) as { cache_evictions?: unknown };
    return typeof evictions === "number" ? evictions : 0;
  }

  rssKib(): number {
    return this.workers.reduce((sum, pid) => sum + anonRssKib(pid), 0);
  }

  async stop(): Promise<void> {
    this.flags.close();
    await this.router.stop();
    await this.proxy.stop();
    await this.memcached.stop();
  }
}
