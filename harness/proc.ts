/**
 * What benchmarks and chaos tests read about nginx workers from /proc: CPU time, which is far steadier than
 * req/s on a shared machine, and resident memory.
 */
import { execSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { type NginxServer, liveWorkers } from "./nginx.ts";

const TICKS_PER_SECOND = Number(execSync("getconf CLK_TCK").toString().trim());

/** The workers of a just-started nginx, once `count` are up: its port answers before the master has forked them all. */
export async function workersOf(nginx: NginxServer, count = 1, timeoutMs = 5000): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pids = [...liveWorkers(nginx.errorLog())];
    if (pids.length >= count || Date.now() > deadline) return pids;
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
