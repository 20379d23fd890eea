/**
 * The containers runtime: testcontainers starts nginx and memcached from images, with host
 * networking so both listen on 127.0.0.1 like the native runtime (Docker's bridge would put
 * them on private-range addresses). Host paths are mounted at the same path, so one nginx.conf
 * serves both runtimes and error.log is read straight from the host.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type Dockerode from "dockerode";
import {
  GenericContainer,
  type StartedTestContainer,
  type WaitStrategy,
  getContainerRuntimeClient,
} from "testcontainers";
import type { Flavour } from "../node-src/nginx-conf.ts";
import { ROOT } from "./paths.ts";
import { waitForPort } from "./net.ts";
import { followPidFile } from "./pid-follower.ts";
import type { Program, Runtime, ServerProcess, SpawnOptions } from "./runtime.ts";

// Ryuk, testcontainers' reaper, is an image of its own that a machine without a registry cannot pull.
process.env.TESTCONTAINERS_RYUK_DISABLED ??= "true";

/** The local image docker/debian/build.sh makes from Debian packages (nginx, lua module, memcached). */
export const LOCAL_IMAGE = "gray-router/debian-nginx-lua:local";

/** The image a Dockerfile under docker/ pins (its FROM line), for when a registry is reachable. */
export function pinnedImage(name: "openresty" | "memcached"): string {
  const dockerfile = readFileSync(join(ROOT, "docker", name, "Dockerfile"), "utf8");
  const from = /^FROM\s+(\S+)/m.exec(dockerfile);
  if (!from?.[1]) throw new Error(`docker/${name}/Dockerfile has no FROM line`);
  return from[1];
}

/**
 * Images: GRAY_NGINX_IMAGE / GRAY_MEMCACHED_IMAGE / GRAY_NUTCRACKER_IMAGE, or "official" for the
 * pinned ones; else the local image. twemproxy has no official image: the local one has Debian's.
 */
function images(): Record<Program, string> {
  const official = process.env.GRAY_IMAGES === "official";
  return {
    nginx: process.env.GRAY_NGINX_IMAGE ?? (official ? pinnedImage("openresty") : LOCAL_IMAGE),
    memcached: process.env.GRAY_MEMCACHED_IMAGE ?? (official ? pinnedImage("memcached") : LOCAL_IMAGE),
    nutcracker: process.env.GRAY_NUTCRACKER_IMAGE ?? LOCAL_IMAGE,
  };
}

/** Ready when host:port (127.0.0.1 unless given) accepts connections; fails fast, with the container's output, if it exits first. */
class LoopbackPortWait implements WaitStrategy {
  private timeoutMs = 30000;
  constructor(
    private readonly port: number,
    private readonly host?: string,
  ) {}

  async waitUntilReady(container: Dockerode.Container): Promise<void> {
    let exited: string | undefined;
    const watch = setInterval(() => {
      container
        .inspect()
        .then(async (info) => {
          if (info.State.Running) return;
          const logs = await container.logs({ stdout: true, stderr: true, tail: 40 });
          exited = `container exited (code ${info.State.ExitCode}): ${logs.toString("utf8").trim()}`;
        })
        .catch(() => undefined);
    }, 100);
    try {
      await waitForPort(this.port, () => exited, this.timeoutMs, this.host);
    } finally {
      clearInterval(watch);
    }
  }

  withStartupTimeout(ms: number): this {
    this.timeoutMs = ms;
    return this;
  }
  isStartupTimeoutSet(): boolean {
    return true;
  }
  getStartupTimeout(): number {
    return this.timeoutMs;
  }
}

/**
 * A daemon followed by pid file runs under Docker's init (docker-init, i.e. tini, shipped with
 * the engine: no image change) so the container is not ended by the old master's exit after a
 * binary upgrade; in the host's pid namespace, so the pid file holds pids the host (the harness,
 * `gray upgrade`) can signal, and with tini as subreaper, as it is not pid 1 there.
 * testcontainers has no option for these, so they go into the HostConfig it builds.
 */
class InitContainer extends GenericContainer {
  constructor(image: string, followed: boolean) {
    super(image);
    if (followed) {
      this.hostConfig.Init = true;
      this.hostConfig.PidMode = "host";
      this.withEnvironment({ TINI_SUBREAPER: "1" });
    }
  }
}

class ContainerProcess implements ServerProcess {
  private stopped = false;
  constructor(
    private readonly container: StartedTestContainer,
    private readonly bin: string,
  ) {}

  async signal(signal: NodeJS.Signals): Promise<void> {
    // Sent by the Docker daemon from outside the container, so STOP reaches even PID 1.
    const client = await getContainerRuntimeClient();
    await client.container.getById(this.container.getId()).kill({ signal });
  }

  async exec(args: string[]): Promise<{ exitCode: number; output: string }> {
    const result = await this.container.exec([this.bin, ...args]);
    return { exitCode: result.exitCode, output: result.output };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.signal("SIGCONT").catch(() => undefined);
    await this.container.stop({ timeout: 5000 });
  }
}

export class ContainerRuntime implements Runtime {
  readonly name = "containers";
  readonly flavour: Flavour;
  private readonly images = images();

  constructor() {
    this.flavour = this.images.nginx.includes("openresty") ? "openresty" : "debian";
  }

  async spawn(program: Program, args: string[], options: SpawnOptions): Promise<ServerProcess> {
    const image = this.images[program];
    const bin = program === "nginx" && this.flavour === "openresty" ? "openresty" : program;
    const followed = options.pidFile !== undefined;
    const container = await new InitContainer(image, followed)
      .withNetworkMode("host")
      .withBindMounts(options.paths.map((p) => ({ source: p, target: p, mode: "rw" as const })))
      .withCommand(followed ? followPidFile(options.pidFile!, [bin, ...args]) : [bin, ...args])
      .withWaitStrategy(new LoopbackPortWait(options.port, options.host))
      .start();
    return new ContainerProcess(container, bin);
  }
}
