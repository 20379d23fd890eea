/**
 * Two ways to run nginx and memcached behind one interface:
 * - containers: testcontainers starts them from images (docker/), host networking on 127.0.0.1;
 * - native: local nginx (or openresty) and memcached processes.
 * GRAY_RUNTIME=containers|native picks one; unset, containers when a Docker engine answers.
 */
import type { Flavour } from "../node-src/nginx-conf.ts";

export type Program = "nginx" | "memcached";

export interface SpawnOptions {
  /** The process is ready once 127.0.0.1:port accepts connections. */
  port: number;
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

async function dockerAnswers(): Promise<boolean> {
  const { getContainerRuntimeClient } = await import("testcontainers");
  try {
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

export async function pickRuntimeName(requested = process.env.GRAY_RUNTIME): Promise<RuntimeName> {
  if (requested === "containers" || requested === "native") return requested;
  if (requested !== undefined && requested !== "" && requested !== "auto") {
    throw new Error(`GRAY_RUNTIME must be containers, native or auto (got "${requested}")`);
  }
  return (await dockerAnswers()) ? "containers" : "native";
}

export async function createRuntime(name?: RuntimeName): Promise<Runtime> {
  const picked = name ?? (await pickRuntimeName());
  if (picked === "containers") {
    const { ContainerRuntime } = await import("./containers.ts");
    return new ContainerRuntime();
  }
  const { NativeRuntime } = await import("./native.ts");
  return new NativeRuntime();
}
