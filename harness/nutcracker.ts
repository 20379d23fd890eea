/**
 * twemproxy (nutcracker) on 127.0.0.1 in front of memcached servers, as an operator puts it in
 * front of a memcached pool: the CLI must work through it, or say why not.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./net.ts";
import type { Runtime, ServerProcess } from "./runtime.ts";
import type { MemcachedAddress } from "./stack.ts";

export interface NutcrackerOptions {
  /** ms before an ejected server is tried again. */
  serverRetryTimeoutMs?: number;
  /** Failures in a row that eject a server from the pool. */
  serverFailureLimit?: number;
}

export class NutcrackerServer implements MemcachedAddress {
  readonly host = "127.0.0.1";

  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly process: ServerProcess,
  ) {}

  /** A pool of `servers` behind one listening port: ketama over fnv1a_64, failing servers ejected. */
  static async start(
    runtime: Runtime,
    servers: MemcachedAddress[],
    options: NutcrackerOptions = {},
  ): Promise<NutcrackerServer> {
    const [port, statsPort] = [await freePort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), "gray-nutcracker-"));
    const conf = join(dir, "nutcracker.yml");
    writeFileSync(
      conf,
      [
        "gray:",
        `  listen: 127.0.0.1:${port}`,
        "  distribution: ketama",
        "  hash: fnv1a_64",
        "  auto_eject_hosts: true",
        `  server_retry_timeout: ${options.serverRetryTimeoutMs ?? 2000}`,
        `  server_failure_limit: ${options.serverFailureLimit ?? 1}`,
        "  servers:",
        ...servers.map((s) => `    - ${s.host}:${s.port}:1`),
        "",
      ].join("\n"),
    );
    // -s/-a: its stats port, on loopback (the default is 0.0.0.0:22222); -o: its log, kept with the conf.
    const args = ["-c", conf, "-s", String(statsPort), "-a", "127.0.0.1", "-o", join(dir, "nutcracker.log")];
    try {
      return new NutcrackerServer(port, dir, await runtime.spawn("nutcracker", args, { port, paths: [dir] }));
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** host:port, as the CLI takes it. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
