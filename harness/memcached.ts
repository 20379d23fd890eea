/** A memcached server on 127.0.0.1 that tests can stop, start again, and pause. */
import { connect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { dirname } from "node:path";
import { freePort } from "./net.ts";
import type { Runtime, ServerProcess } from "./runtime.ts";

/** How the test server is started (the router's own memcached settings are MemcachedOptions in lua-src/gray/options.ts). */
export interface MemcachedServerOptions {
  port?: number;
  memoryMb?: number;
  /** -c: at this many connections memcached answers "ERROR Too many open connections" and closes (with one worker thread, -t 1; a few are its own). */
  maxConnections?: number;
  /** Also listen on [::1], same port. */
  ipv6?: boolean;
  /** -Y: text-protocol authentication with this file's user:password lines (readable by the server's user). */
  authFile?: string;
  /** -Z: TLS only, with this certificate and key (readable by the server's user); the harness's own commands speak TLS too. */
  tls?: { cert: string; key: string };
}

export class MemcachedServer {
  readonly host = "127.0.0.1";
  private process: ServerProcess | undefined;

  private constructor(
    private readonly runtime: Runtime,
    readonly port: number,
    private readonly memoryMb: number,
    private readonly options: MemcachedServerOptions,
  ) {}

  static async start(runtime: Runtime, options: MemcachedServerOptions = {}): Promise<MemcachedServer> {
    const server = new MemcachedServer(runtime, options.port ?? (await freePort()), options.memoryMb ?? 64, options);
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
    const listen = this.options.ipv6 ? `${this.host},[::1]` : this.host;
    const args = ["-l", listen, "-p", String(this.port), "-U", "0", "-m", String(this.memoryMb), "-u", "nobody"];
    if (this.options.maxConnections !== undefined) args.push("-c", String(this.options.maxConnections), "-t", "1");
    const auth = this.options.authFile;
    if (auth !== undefined) args.push("-Y", auth);
    const tls = this.options.tls;
    if (tls !== undefined) args.push("-Z", "-o", `ssl_chain_cert=${tls.cert},ssl_key=${tls.key}`);
    const paths = [auth, tls?.cert, tls?.key].filter((f) => f !== undefined).map((f) => dirname(f));
    this.process = await this.runtime.spawn("memcached", args, { port: this.port, paths: [...new Set(paths)] });
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

  /** One text-protocol command on a connection of its own; resolves with the reply once it ends with `end`. */
  private ask(command: string, end: RegExp): Promise<string> {
    return new Promise((resolve, reject) => {
      const target = { host: this.host, port: this.port };
      const send = () => socket.write(`${command}\r\n`);
      // The harness checks its own server: which certificate it shows is the tests' business.
      const socket = this.options.tls
        ? tlsConnect({ ...target, rejectUnauthorized: false }, send)
        : connect(target, send);
      let text = "";
      socket.on("data", (d) => {
        text += String(d);
        if (!end.test(text)) return;
        socket.destroy();
        resolve(text);
      });
      socket.on("error", reject);
    });
  }

  /** Its `stats` (cmd_get, curr_items, ...), as text values. */
  async stats(): Promise<Record<string, string>> {
    const text = await this.ask("stats", /END\r\n$/);
    const out: Record<string, string> = {};
    for (const m of text.matchAll(/^STAT (\S+) (\S+)\r$/gm)) out[m[1]!] = m[2]!;
    return out;
  }

  /** flush_all, sent to this node itself (nutcracker does not forward it). */
  async flush(): Promise<void> {
    const reply = await this.ask("flush_all", /\r\n$/);
    if (reply !== "OK\r\n") throw new Error(`flush_all on ${this.address}: ${reply.trim()}`);
  }

  /** SIGSTOP: connections are still accepted by the kernel, but nothing answers. */
  async pause(): Promise<void> {
    await this.process?.signal("SIGSTOP");
  }

  async resume(): Promise<void> {
    await this.process?.signal("SIGCONT");
  }
}
