/**
 * What the benchmark reads about nginx workers from /proc: CPU time, which is far steadier than
 * req/s on a shared machine, and resident memory. Worker pids come from error.log ("start worker
 * process N"), which names host pids on both runtimes (containers share the host's pid namespace).
 */
import { execSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { NginxServer } from "./nginx.ts";

const TICKS_PER_SECOND = Number(execSync("getconf CLK_TCK").toString().trim());

/** Workers error.log shows started and not exited since. */
export function workerPids(errorLog: string): number[] {
  const live = new Set<number>();
  for (const m of errorLog.matchAll(/start worker process (\d+)|worker process (\d+) exited/g)) {
    if (m[1] !== undefined) live.add(Number(m[1]));
    else live.delete(Number(m[2]));
  }
  return [...live];
}

/** The workers of a just-started nginx: its port answers before the master has forked them. */
export async function workersOf(nginx: NginxServer, timeoutMs = 5000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = workerPids(nginx.errorLog());
    if (pids.length > 0 || Date.now() > deadline) return pids;
    await sleep(20);
  }
}

/** User plus system CPU seconds the processes have used so far. */
export function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    // Fields after "(comm) ": state is the first, utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / TICKS_PER_SECOND;
}

/**
 * Anonymous resident memory in KiB (RssAnon): the process's own heap, where the Lua VM lives.
 * VmRSS, which Test::Nginx's check_leak watches, also counts the shared dict's pages as they are
 * first touched, which grows until the zone is in use and is not a leak.
 */
export function anonRssKib(pid: number): number {
  const m = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no RssAnon for pid ${pid}`);
  return Number(m[1]);
}
