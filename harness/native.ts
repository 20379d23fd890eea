/** The native runtime: nginx (or openresty) and memcached as child processes of this Node process. */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { once } from "node:events";
import { delimiter, join } from "node:path";
import { DEBIAN_MODULES, type Flavour } from "../node-src/nginx-conf.ts";
import { waitForPort } from "./net.ts";
import { followPidFile } from "./pid-follower.ts";
import type { Program, Runtime, ServerProcess, SpawnOptions } from "./runtime.ts";

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  for (const dir of ["/usr/sbin", "/usr/local/openresty/bin", "/usr/local/sbin"]) {
    if (existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** Every child still running when Node exits is killed, so a failed test leaves nothing behind. */
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) {
    child.kill("SIGCONT");
    // TERM, not KILL: an nginx master killed outright would leave its workers serving.
    child.kill("SIGTERM");
  }
});

class NativeProcess implements ServerProcess {
  private output = "";
  private exit: string | undefined;

  constructor(
    private readonly bin: string,
    private readonly child: ChildProcess,
    private readonly stopSignal: NodeJS.Signals,
  ) {
    running.add(child);
    child.stdout?.on("data", (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (this.output += d.toString()));
    child.once("exit", (code, signal) => {
      running.delete(child);
      this.exit = `${bin} exited (${signal ?? `code ${code}`}): ${this.output.trim().slice(-2000)}`;
    });
  }

  exitReason(): string | undefined {
    return this.exit;
  }

  async signal(signal: NodeJS.Signals): Promise<void> {
    if (this.exit === undefined) this.child.kill(signal);
  }

  exec(args: string[]): Promise<{ exitCode: number; output: string }> {
    return new Promise((resolve) => {
      execFile(this.bin, args, (err, stdout, stderr) => {
        const exitCode = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ exitCode, output: stdout + stderr });
      });
    });
  }

  async stop(): Promise<void> {
    if (this.exit !== undefined) return;
    const exited = once(this.child, "exit");
    this.child.kill("SIGCONT");
    this.child.kill(this.stopSignal);
    const terminate = setTimeout(() => this.child.kill("SIGTERM"), 3000);
    const kill = setTimeout(() => this.child.kill("SIGKILL"), 8000);
    await exited;
    clearTimeout(terminate);
    clearTimeout(kill);
  }
}

export class NativeRuntime implements Runtime {
  readonly name = "native";
  readonly flavour: Flavour;
  private readonly nginx: string;
  private readonly memcached: string;
  /** twemproxy; only the tests that put it in front of memcached need it. */
  private readonly nutcracker: string | undefined;
  /** tini (Docker's init, also a Debian package), a subreaper for servers followed by pid file. */
  private readonly init: string | undefined;

  constructor() {
    const nginx = process.env.GRAY_NGINX_BIN ?? onPath("openresty") ?? onPath("nginx");
    const memcached = process.env.GRAY_MEMCACHED_BIN ?? onPath("memcached");
    if (nginx === undefined || memcached === undefined) {
      throw new Error("native runtime: nginx (or openresty) and memcached must be installed (run npm run setup)");
    }
    this.nginx = nginx;
    this.memcached = memcached;
    this.nutcracker = process.env.GRAY_NUTCRACKER_BIN ?? onPath("nutcracker");
    this.init = process.env.GRAY_INIT_BIN ?? onPath("tini") ?? onPath("docker-init");
    this.flavour = DEBIAN_MODULES.every((m) => existsSync(m)) && !nginx.includes("openresty") ? "debian" : "openresty";
  }

  async spawn(program: Program, args: string[], options: SpawnOptions): Promise<ServerProcess> {
    const bin = program === "nginx" ? this.nginx : program === "memcached" ? this.memcached : this.nutcracker;
    if (bin === undefined) throw new Error(`native runtime: ${program} must be installed (run npm run setup)`);
    let command = [bin, ...args];
    if (options.pidFile !== undefined) {
      if (this.init === undefined)
        throw new Error("native runtime: tini must be installed to follow a daemon by pid file (run npm run setup)");
      // -s: tini becomes the subreaper of the daemon, which forks away from the follower.
      command = [this.init, "-s", "--", ...followPidFile(options.pidFile, command)];
    }
    const child = spawn(command[0]!, command.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    // nginx: QUIT is the graceful stop; memcached and nutcracker stop on TERM.
    const proc = new NativeProcess(bin, child, program === "nginx" ? "SIGQUIT" : "SIGTERM");
    try {
      await waitForPort(options.port, () => proc.exitReason(), undefined, options.host);
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return proc;
  }
}
