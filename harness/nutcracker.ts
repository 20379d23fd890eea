/**
 * twemproxy (nutcracker) on 127.0.0.1 in front of memcached servers, as an operator puts it in
 * front of a memcached pool: the CLI must work through it, or say why not.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./net.ts";
import type { Runtime, ServerProcess } from "./runtime.ts";
import type { MemcachedAddress } from "./stack.ts";

export interface NutcrackerOptions {
  /** ms before an ejected server is tried again (default 2000). */
  serverRetryTimeoutMs?: number;
  /** Failures in a row that eject a server from the pool (default 1). */
  serverFailureLimit?: number;
  /** ms it waits for a server's answer before it answers SERVER_ERROR itself (default: forever, as nutcracker's own default). */
  timeoutMs?: number;
}

/** One server of the pool in nutcracker's stats: how often it failed, and since when it is out of the ring. */
export interface PoolServerStats {
  server_eof: number;
  server_err: number;
  server_timedout: number;
  /** µs since the epoch of its last ejection, 0 if never. */
  server_ejected_at: number;
  requests: number;
}

export class NutcrackerServer implements MemcachedAddress {
  readonly host = "127.0.0.1";

  private constructor(
    readonly port: number,
    private readonly statsPort: number,
    private readonly dir: string,
    private readonly process: ServerProcess,
    /** A dead server is out of the ring after this many failed requests... */
    readonly failureLimit: number,
    /** ... and tried again after this many ms (then out again at its next failure, if still dead). */
    readonly retryTimeoutMs: number,
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
    const failureLimit = options.serverFailureLimit ?? 1;
    const retryTimeoutMs = options.serverRetryTimeoutMs ?? 2000;
    writeFileSync(
      conf,
      [
        "gray:",
        `  listen: 127.0.0.1:${port}`,
        "  distribution: ketama",
        "  hash: fnv1a_64",
        "  auto_eject_hosts: true",
        `  server_retry_timeout: ${retryTimeoutMs}`,
        `  server_failure_limit: ${failureLimit}`,
        ...(options.timeoutMs === undefined ? [] : [`  timeout: ${options.timeoutMs}`]),
        "  servers:",
        ...servers.map((s) => `    - ${s.host}:${s.port}:1`),
        "",
      ].join("\n"),
    );
    // -s/-a: its stats port, on loopback (the default is 0.0.0.0:22222); -i: stats every second (not 30 s);
    // -o: its log, kept with the conf.
    const args = [
      "-c",
      conf,
      "-s",
      String(statsPort),
      "-a",
      "127.0.0.1",
      "-i",
      "1000",
      "-o",
      join(dir, "nutcracker.log"),
    ];
    try {
      const process = await runtime.spawn("nutcracker", args, { port, paths: [dir] });
      return new NutcrackerServer(port, statsPort, dir, process, failureLimit, retryTimeoutMs);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Its log (ejections are logged at its default level, as "failed" / "ejected" lines). */
  log(): string {
    try {
      return readFileSync(join(this.dir, "nutcracker.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** host:port, as the CLI takes it. */
  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** The pool's servers ("host:port") as its stats port reports them (a JSON document sent on connect). */
  async serverStats(): Promise<Record<string, PoolServerStats>> {
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: this.host, port: this.statsPort });
      let out = "";
      socket.on("data", (d) => (out += String(d)));
      socket.on("end", () => resolve(out));
      socket.on("error", reject);
    });
    const pool = (JSON.parse(text) as Record<string, unknown>).gray as Record<string, unknown>;
    const servers: Record<string, PoolServerStats> = {};
    for (const [name, value] of Object.entries(pool)) {
      if (typeof value === "object" && value !== null) servers[name] = value as PoolServerStats;
    }
    return servers;
  }

  async stop(): Promise<void> {
    await this.process.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
