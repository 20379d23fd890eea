/** A memcached server on 127.0.0.1 that tests can stop, start again, and pause. */
import { freePort } from "./net.ts";
import type { Runtime, ServerProcess } from "./runtime.ts";

/** How the test server is started (the router's own memcached settings are MemcachedOptions in lua-src/gray/options.ts). */
export interface MemcachedServerOptions {
  port?: number;
  memoryMb?: number;
}

export class MemcachedServer {
  readonly host = "127.0.0.1";
  private process: ServerProcess | undefined;

  private constructor(
    private readonly runtime: Runtime,
    readonly port: number,
    private readonly memoryMb: number,
  ) {}

  static async start(runtime: Runtime, options: MemcachedServerOptions = {}): Promise<MemcachedServer> {
    const server = new MemcachedServer(runtime, options.port ?? (await freePort()), options.memoryMb ?? 64);
    await server.startAgain();
    return server;
  }

  /** host:port, as memjs and the CLI take it. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Starts it (again) on the same port, empty. */
  async startAgain(): Promise<void> {
    if (this.process) return;
    // -u: memcached refuses to run as root without a user to drop to (containers run as root).
    const args = ["-l", this.host, "-p", String(this.port), "-U", "0", "-m", String(this.memoryMb), "-u", "nobody"];
    this.process = await this.runtime.spawn("memcached", args, { port: this.port, paths: [] });
  }

  async stop(): Promise<void> {
    const process = this.process;
    this.process = undefined;
    await process?.stop();
  }

  /** SIGKILL: no goodbye to clients; the port refuses until startAgain(). */
  async kill(): Promise<void> {
    await this.process?.signal("SIGKILL");
    await this.stop();
  }

  /** SIGSTOP: connections are still accepted by the kernel, but nothing answers. */
  async pause(): Promise<void> {
    await this.process?.signal("SIGSTOP");
  }

  async resume(): Promise<void> {
    await this.process?.signal("SIGCONT");
  }
}
