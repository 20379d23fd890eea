/**
 * A fleet as operators run one: N routers (separate nginx instances, each on its own loopback
 * address, 127.0.30.<n>, as hosts behind a load balancer would be) and M memcached nodes behind one
 * nutcracker (twemproxy: ketama, failing nodes ejected). Routers and the CLI point at nutcracker
 * exactly as they would at one memcached. Each router keeps the stack's own backends (stable, canary,
 * and any extra canaries), which answer their names, so a response still says which route it took.
 *
 *   routers 127.0.30.1 … 127.0.30.N ──┐
 *   gray CLI (--memcached proxy)    ──┴── nutcracker ── memcached node 1 … M
 */
import { MemcachedServer } from "./memcached.ts";
import { type NutcrackerOptions, NutcrackerServer } from "./nutcracker.ts";
import type { Runtime } from "./runtime.ts";
import { type ConfigureTable, RouterStack, type StackExtras } from "./stack.ts";

export interface FleetOptions {
  runtime: Runtime;
  /** Routers (default 2). */
  routers?: number;
  /** memcached nodes behind nutcracker (default 3). */
  nodes?: number;
  /** configure() options of every router; memcached host and port are nutcracker's. */
  options?: ConfigureTable;
  /** Extras of every router's stack (workers, canaries, reuseport, ...); its listen address is the fleet's. */
  extras?: Omit<StackExtras, "host">;
  proxy?: NutcrackerOptions;
}

/** The n-th router's loopback address (n from 0). */
export const routerHost = (n: number) => `127.0.30.${n + 1}`;

export class Fleet {
  private constructor(
    readonly routers: RouterStack[],
    readonly nodes: MemcachedServer[],
    readonly proxy: NutcrackerServer,
  ) {}

  static async start(o: FleetOptions): Promise<Fleet> {
    const nodes: MemcachedServer[] = [];
    const routers: RouterStack[] = [];
    let proxy: NutcrackerServer | undefined;
    try {
      for (let i = 0; i < (o.nodes ?? 3); i++) nodes.push(await MemcachedServer.start(o.runtime));
      proxy = await NutcrackerServer.start(o.runtime, nodes, o.proxy);
      for (let i = 0; i < (o.routers ?? 2); i++) {
        routers.push(
          await RouterStack.start({
            ...o.extras,
            runtime: o.runtime,
            memcached: proxy,
            options: o.options,
            host: routerHost(i),
          }),
        );
      }
      return new Fleet(routers, nodes, proxy);
    } catch (err) {
      await stopAll(routers, proxy, nodes);
      throw err;
    }
  }

  /** nutcracker's host:port: what routers and the CLI (--memcached, GRAY_MEMCACHED) use. */
  get address(): string {
    return this.proxy.address;
  }

  /** Empties every node directly (nutcracker does not forward flush_all). */
  async flushNodes(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.flush()));
  }

  /** memcached's cmd_get summed over the nodes (keys asked for: a get of 3 keys counts 3). */
  async storeGets(): Promise<number> {
    const stats = await Promise.all(this.nodes.map((n) => n.stats()));
    return stats.reduce((sum, s) => sum + Number(s.cmd_get ?? 0), 0);
  }

  stop(): Promise<void> {
    return stopAll(this.routers, this.proxy, this.nodes);
  }
}

async function stopAll(routers: RouterStack[], proxy: NutcrackerServer | undefined, nodes: MemcachedServer[]) {
  await Promise.allSettled(routers.map((r) => r.stop()));
  await proxy?.stop();
  await Promise.allSettled(nodes.map((n) => n.stop()));
}
