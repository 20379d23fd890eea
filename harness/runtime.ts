/**
 * Two ways to run nginx and memcached behind one interface:
 * - containers: testcontainers starts them from images (docker/), host networking on 127.0.0.1;
 * - native: local nginx (or openresty), memcached and nutcracker (twemproxy) processes.
 * Each runtime (containers.ts, native.ts) implements this interface; pick-runtime.ts chooses one.
 */
import type { Flavour } from "../node-src/nginx-conf.ts";

export type Program = "nginx" | "memcached" | "nutcracker";

export interface SpawnOptions {
  /** The process is ready once host:port accepts connections. */
  port: number;
  /** A loopback address (default 127.0.0.1), e.g. a fleet's router on 127.0.30.1. */
  host?: string;
  /** Host directories the program reads or writes (containers mount them at the same path). */
  paths: string[];
  /**
   * The program daemonizes and names its main process in this file (nginx's pid directive):
   * it runs under an init, followed by pid file (see pid-follower.ts). Pids in the file are
   * host pids on both runtimes, so the harness and `gray upgrade` can signal them directly.
   */
  pidFile?: string;
}

export interface ServerProcess {
  /** Sends a signal to the spawned process (SIGSTOP/SIGCONT to pause, ...); with a pid file, to the follower, which passes QUIT and TERM on. */
  signal(signal: NodeJS.Signals): Promise<void>;
  /** Runs the same program binary with other arguments where it runs (nginx -s reload). */
  exec(args: string[]): Promise<{ exitCode: number; output: string }>;
  /** Stops it and waits until it is gone; safe to call twice. */
  stop(): Promise<void>;
}

export interface Runtime {
  readonly name: "containers" | "native";
  /** How this runtime's nginx gets lua-nginx-module and resty.memcached. */
  readonly flavour: Flavour;
  spawn(program: Program, args: string[], options: SpawnOptions): Promise<ServerProcess>;
}

export type RuntimeName = Runtime["name"];
