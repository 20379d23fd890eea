/**
 * An nginx (or openresty) server with a prefix directory of its own: conf/nginx.conf, logs/,
 * temp dirs. The prefix is removed on stop, whatever the test's outcome. nginx runs as the
 * daemon it is by default and is known by its pid file (logs/nginx.pid, and logs/nginx.pid.oldbin
 * during a binary upgrade), so a new master started by USR2 is followed and stopped like the first.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { isAlive, readPid, reloadVerdict } from "../node-src/nginx-master.ts";
import type { Runtime, ServerProcess } from "./runtime.ts";

export interface ReloadResult {
  ok: boolean;
  /** error.log lines written during the reload. */
  log: string;
}

const START_ARGS = ["-c", "conf/nginx.conf", "-e", "logs/error.log"];

/** A master may exit between being listed and being signalled: that is what stopping wants anyway. */
function signalIfAlive(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err;
  }
}

/** Lines of error.log that a healthy router never writes: error level or worse, writes to Lua globals, raw bytes in its own lines. */
export function logProblems(log: string): string[] {
  return log.split("\n").filter(
    (l) =>
      /\[(error|crit|alert|emerg)\]/.test(l) ||
      /writing a global Lua variable/.test(l) ||
      // The router quotes what the store said: never as raw bytes.
      (l.includes("gray.router:") && /[^\x20-\x7e\t]/.test(l)),
  );
}

/** Worker pids that error.log shows started and not exited since (host pids on both runtimes). */
export function liveWorkers(log: string): Set<number> {
  const live = new Set<number>();
  for (const m of log.matchAll(/start worker process (\d+)|worker process (\d+) exited/g)) {
    if (m[1] !== undefined) live.add(Number(m[1]));
    else live.delete(Number(m[2]));
  }
  return live;
}

export class NginxServer {
  private process: ServerProcess | undefined;

  private constructor(
    readonly prefix: string,
    readonly port: number,
    readonly host: string,
  ) {}

  /** A prefix directory holding conf/nginx.conf = conf, which listens on host:port; nothing runs yet. */
  static prepare(conf: string, port: number, host = "127.0.0.1"): NginxServer {
    const prefix = mkdtempSync(join(tmpdir(), "gray-nginx-"));
    // Workers run as nobody when the master is root: they must reach the prefix's temp dirs.
    chmodSync(prefix, 0o755);
    mkdirSync(join(prefix, "conf"));
    mkdirSync(join(prefix, "logs"));
    writeFileSync(join(prefix, "logs", "error.log"), "");
    const server = new NginxServer(prefix, port, host);
    server.writeConf(conf);
    return server;
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  get errorLogPath(): string {
    return join(this.prefix, "logs", "error.log");
  }

  errorLog(): string {
    return readFileSync(this.errorLogPath, "utf8");
  }

  writeConf(conf: string): void {
    writeFileSync(join(this.prefix, "conf", "nginx.conf"), conf);
  }

  /** The pid file renderMain() names (relative to the prefix). */
  get pidFile(): string {
    return join(this.prefix, "logs", "nginx.pid");
  }

  /** The masters now running: the one in the pid file and, during a binary upgrade, the old one. */
  masters(): number[] {
    return [readPid(this.pidFile), readPid(`${this.pidFile}.oldbin`)].filter(
      (p): p is number => p !== undefined && isAlive(p),
    );
  }

  /** Sends a signal to the master named by the pid file (SIGKILL ends a single-process nginx outright). */
  signal(signal: NodeJS.Signals): void {
    const pid = readPid(this.pidFile);
    if (pid === undefined) throw new Error(`no nginx master pid in ${this.pidFile}`);
    process.kill(pid, signal);
  }

  /** Starts nginx; rejects, with nginx's own words, if it refuses to start. */
  async start(runtime: Runtime, readPaths: string[]): Promise<void> {
    try {
      this.process = await runtime.spawn("nginx", ["-p", this.prefix, ...START_ARGS], {
        port: this.port,
        host: this.host,
        paths: [this.prefix, ...readPaths],
        pidFile: this.pidFile,
      });
      // The listening sockets accept before the daemon has forked and written its pid file.
      const deadline = Date.now() + 10000;
      while (this.masters().length === 0) {
        if (Date.now() > deadline) throw new Error(`no live master in ${this.pidFile} after 10000 ms`);
        await sleep(10);
      }
    } catch (err) {
      // With -e, nginx writes why it refused to start to error.log rather than to stderr.
      throw new Error(`nginx did not start: ${(err as Error).message}\n${this.errorLog()}`, { cause: err });
    }
  }

  /**
   * nginx -s reload, then waits for the master's verdict in error.log: either the error that kept
   * the old workers, or new workers started and every old one gone (so a new connection meets
   * the new config).
   */
  async reload(conf?: string, timeoutMs = 10000): Promise<ReloadResult> {
    if (!this.process) throw new Error("nginx is not running");
    if (conf !== undefined) this.writeConf(conf);
    const before = readFileSync(this.errorLogPath);
    const oldWorkers = liveWorkers(before.toString("utf8"));
    const sent = await this.process.exec(["-p", this.prefix, ...START_ARGS, "-s", "reload"]);
    if (sent.exitCode !== 0) return { ok: false, log: sent.output };
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const log = readFileSync(this.errorLogPath).subarray(before.length).toString("utf8");
      const verdict = reloadVerdict(log);
      if (verdict === "refused") return { ok: false, log };
      // Taken, and every old worker gone: a new connection meets the new config.
      const live = liveWorkers(before.toString("utf8") + log);
      if (verdict === "taken" && [...oldWorkers].every((pid) => !live.has(pid))) return { ok: true, log };
      await sleep(20);
    }
    throw new Error(`no verdict on the reload within ${timeoutMs} ms`);
  }

  /** Stops every master the pid files name (gracefully, then not), then what the runtime spawned. */
  async stop(): Promise<void> {
    const spawned = this.process;
    this.process = undefined;
    try {
      for (const [signal, waitMs] of [
        ["SIGQUIT", 5000],
        ["SIGTERM", 3000],
        ["SIGKILL", 1000],
      ] as const) {
        const masters = this.masters();
        if (masters.length === 0) break;
        for (const pid of masters) signalIfAlive(pid, signal);
        const deadline = Date.now() + waitMs;
        while (this.masters().length > 0 && Date.now() < deadline) await sleep(20);
      }
      await spawned?.stop();
    } finally {
      rmSync(this.prefix, { recursive: true, force: true });
    }
  }
}
