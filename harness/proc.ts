/**
 * What benchmarks and chaos tests read about nginx workers from /proc: CPU time, which is far steadier than
 * req/s on a shared machine, and resident memory.
 */
import { execFileSync, execSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
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

/**
 * CPU seconds the processes have run so far: the scheduler's own count in nanoseconds
 * (/proc/PID/schedstat), else user plus system time from /proc/PID/stat, which the kernel
 * charges in whole clock ticks (10 ms) to whichever process a tick finds running.
 */
export function cpuSeconds(pids: number[]): number {
  let seconds = 0;
  for (const pid of pids) {
    try {
      seconds += Number(readFileSync(`/proc/${pid}/schedstat`, "utf8").split(" ")[0]) / 1e9;
    } catch {
      // Fields after "(comm) ": state is the first, utime and stime are the 12th and 13th.
      const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      seconds += (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
    }
  }
  return seconds;
}

/**
 * Where the benchmark runs what: the measured nginx's workers alone on the last CPU, the load
 * generator and the backends on the others, so the workers' CPU per request is not inflated by
 * sharing a core with them. Undefined on a single CPU.
 */
export interface CpuLayout {
  measured: string;
  others: string;
}
export function cpuLayout(): CpuLayout | undefined {
  const n = availableParallelism();
  return n < 2 ? undefined : { measured: String(n - 1), others: n === 2 ? "0" : `0-${n - 2}` };
}

/** Moves the processes (all their threads) onto these CPUs (taskset's list syntax). */
export function pin(pids: number[], cpus: string): void {
  for (const pid of pids) execFileSync("taskset", ["-acp", cpus, String(pid)], { stdio: "ignore" });
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
