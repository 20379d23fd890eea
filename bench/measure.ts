/**
 * The benchmark's measuring loop: every target runs once per round, interleaved (A B C … A B C …)
 * so drift on a noisy machine falls on all of them alike. Each sample has wrk's figures and the
 * CPU time the target's nginx workers spent per request.
 */
import { execFileSync } from "node:child_process";
import { get } from "../harness/http.ts";
import { freePort } from "../harness/net.ts";
import { NginxServer } from "../harness/nginx.ts";
import { LUA_DIR, LUA_SHIM_DIR } from "../harness/paths.ts";
import type { Runtime } from "../harness/runtime.ts";
import { markdownTable } from "../harness/table.ts";
import { renderMain } from "../node-src/nginx-conf.ts";
import { cpuLayout, cpuSeconds, pin, workersOf } from "../harness/proc.ts";
import type { Variant, VariantPorts } from "./variants.ts";
import { type WrkResult, wrk } from "./wrk.ts";

export interface BenchTarget {
  name: string;
  nginx: NginxServer;
  /** wrk Lua script generating the requests, if not a plain GET /. */
  script?: string;
  /** How many workers the nginx runs (1 unless given). */
  workers?: number;
}

export interface Sample extends WrkResult {
  /** CPU microseconds the workers used per request (user + system). */
  cpuUs: number;
}

export interface RoundPlan {
  rounds: number;
  seconds: number;
  connections: number;
}

/** One nginx with `workers` workers around these http-context lines, listening on `port`, reading files under `paths` too. */
export async function startNginx(
  runtime: Runtime,
  http: string[],
  port: number,
  workers = 1,
  paths: string[] = [],
): Promise<NginxServer> {
  const nginx = NginxServer.prepare(renderMain({ flavour: runtime.flavour, workers, http }), port);
  await nginx.start(runtime, [LUA_DIR, LUA_SHIM_DIR, ...paths]);
  return nginx;
}

/**
 * Runs a Lua chunk that times something inside nginx's own LuaJIT (as a content handler, with
 * the router's modules on the path, a shared dict `dict`, and `location` directives before the
 * handler) and returns the JSON it prints: the first run compiles the traces, the second is the one read.
 */
export async function timedInNginx<T>(
  runtime: Runtime,
  luaPaths: string[],
  dict: string,
  chunk: string,
  location: string[] = [],
): Promise<T> {
  const port = await freePort();
  const nginx = await startNginx(
    runtime,
    [
      `lua_package_path "${luaPaths.map((d) => `${d}/?.lua`).join(";")};;";`,
      `lua_shared_dict ${dict};`,
      "server {",
      `    listen 127.0.0.1:${port};`,
      `    location / { ${location.join(" ")} content_by_lua_block { ${chunk} } }`,
      "}",
    ],
    port,
  );
  try {
    await get(`${nginx.url}/`, { timeoutMs: 60000 });
    return JSON.parse((await get(`${nginx.url}/`, { timeoutMs: 60000 })).body) as T;
  } finally {
    await nginx.stop();
  }
}

/** What every variant's nginx is put in front of: the router's Lua, the backends, memcached. */
export interface Bed {
  runtime: Runtime;
  luaPaths: string[];
  ports: Omit<VariantPorts, "listen">;
}

/** A variant's http lines in an nginx of their own, on a free port. */
export async function startVariant(
  bed: Bed,
  http: Variant["http"],
  workers = 1,
  paths: string[] = [],
): Promise<NginxServer> {
  const listen = await freePort();
  return startNginx(bed.runtime, http(bed.luaPaths, { ...bed.ports, listen }), listen, workers, paths);
}

const LAYOUT = cpuLayout();

/** Keeps the backends (and anything else serving the load) off the measured workers' CPU. */
export function pinAside(pids: number[]): void {
  if (LAYOUT !== undefined) pin(pids, LAYOUT.others);
}

export async function measureOnce(target: BenchTarget, seconds: number, connections: number): Promise<Sample> {
  const pids = await workersOf(target.nginx, target.workers);
  if (LAYOUT !== undefined) pin(pids, LAYOUT.measured);
  const before = cpuSeconds(pids);
  const r = await wrk({
    url: `${target.nginx.url}/`,
    seconds,
    connections,
    script: target.script,
    cpus: LAYOUT?.others,
  });
  return { ...r, cpuUs: ((cpuSeconds(pids) - before) * 1e6) / Math.max(r.requests, 1) };
}

/** Samples by target name, one per round; `each` runs around every sample (e.g. to count sockets). */
export async function interleave(
  targets: BenchTarget[],
  load: RoundPlan,
  each: (target: BenchTarget, run: () => Promise<Sample>) => Promise<Sample> = (_, run) => run(),
): Promise<Map<string, Sample[]>> {
  const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < load.rounds; round++) {
    for (const t of targets) {
      const s = await each(t, () => measureOnce(t, load.seconds, load.connections));
      samples.get(t.name)!.push(s);
      process.stderr.write(
        `round ${round + 1}/${load.rounds} ${t.name.padEnd(16)} ${s.rps.toFixed(0)} req/s, ${s.cpuUs.toFixed(1)} µs CPU/request\n`,
      );
    }
  }
  return samples;
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Ratios of a's req/s to b's, round by round. */
export function ratios(a: Sample[], b: Sample[]): number[] {
  return a.map((s, i) => s.rps / b[i]!.rps);
}

/** A Markdown table of already formatted cells, rendered like the README's other tables. */
export function table(header: string[], rows: string[][]): string {
  return markdownTable(
    header.map((title, i) => ({ title, cell: (row: string[]) => row[i]! })),
    rows,
  );
}

/** Whether a tool a part needs (perf, valgrind) is installed: it answers --version. */
export function installed(command: string): boolean {
  try {
    execFileSync(command, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
