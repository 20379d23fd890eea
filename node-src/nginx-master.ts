/**
 * nginx's binary upgrade, driven through the pid file as nginx itself records it: USR2 makes the
 * master rename PATH to PATH.oldbin and start a new master (the binary on disk, which re-reads
 * the configuration) that writes PATH; WINCH retires the old master's workers; QUIT ends the old
 * master. Until then, HUP on the old master brings its workers back without re-reading the
 * configuration, and QUIT on the new master makes the old one rename PATH.oldbin back to PATH.
 * Used by `gray upgrade`, the harness's upgrade scenarios and its NginxServer. Linux: reads /proc.
 */
import { readFileSync, readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/** The pid file cannot be read, a process is gone, or nginx did not get there in time. */
export class UpgradeError extends Error {}

export function readPid(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : undefined;
}

/** Running, not a zombie waiting to be reaped. */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Live processes whose parent is pid: an nginx master's workers (and a new master it started). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (fields[0] !== "Z" && Number(fields[1]) === pid) out.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return out;
}

async function waitUntil(what: string, done: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new UpgradeError(`${what} within ${timeoutMs} ms`);
    await sleep(20);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    throw new UpgradeError(`cannot send ${sig} to nginx master ${pid}: ${(err as Error).message}`);
  }
}

/** The master in the pid file, alive; else an UpgradeError naming the file. */
export function runningMaster(pidFile: string): number {
  const pid = readPid(pidFile);
  if (pid === undefined) throw new UpgradeError(`cannot read an nginx master pid from ${pidFile}`);
  if (!isAlive(pid)) throw new UpgradeError(`nginx master ${pid} (from ${pidFile}) is not running`);
  return pid;
}

export class BinaryUpgrade {
  private constructor(
    readonly pidFile: string,
    readonly oldPid: number,
    readonly newPid: number,
    private readonly timeoutMs: number,
  ) {}

  private get oldbin(): string {
    return `${this.pidFile}.oldbin`;
  }

  /** Old master's own workers: its children other than the new master. */
  oldWorkers(): number[] {
    return childrenOf(this.oldPid).filter((p) => p !== this.newPid);
  }

  /** USR2, then waits for the new master and its workers: both generations serve from here on. */
  static async begin(pidFile: string, timeoutMs = 10000): Promise<BinaryUpgrade> {
    const oldPid = runningMaster(pidFile);
    if (readPid(`${pidFile}.oldbin`) !== undefined) throw new UpgradeError(`${pidFile}.oldbin exists: an upgrade is already under way`);
    signal(oldPid, "SIGUSR2");
    let newPid: number | undefined;
    await waitUntil(
      `no new master wrote ${pidFile} (see nginx's error.log)`,
      () => {
        const pid = readPid(pidFile);
        if (readPid(`${pidFile}.oldbin`) === oldPid && pid !== undefined && pid !== oldPid && isAlive(pid)) newPid = pid;
        return newPid !== undefined && childrenOf(newPid).length > 0;
      },
      timeoutMs,
    );
    return new BinaryUpgrade(pidFile, oldPid, newPid!, timeoutMs);
  }

  /** WINCH: the old workers stop accepting and leave once their requests are done; only the new master serves. */
  async retireOldWorkers(): Promise<void> {
    signal(this.oldPid, "SIGWINCH");
    await waitUntil(`the old master ${this.oldPid}'s workers did not exit`, () => this.oldWorkers().length === 0, this.timeoutMs);
  }

  /** QUIT the old master: the upgrade is done and can no longer be undone. */
  async finish(): Promise<void> {
    signal(this.oldPid, "SIGQUIT");
    await waitUntil(`the old master ${this.oldPid} did not exit`, () => !isAlive(this.oldPid) && readPid(this.oldbin) === undefined, this.timeoutMs);
  }

  /** HUP the old master (its workers come back, on its configuration), then QUIT the new one. */
  async rollback(): Promise<void> {
    signal(this.oldPid, "SIGHUP");
    await waitUntil(`the old master ${this.oldPid} started no workers`, () => this.oldWorkers().length > 0, this.timeoutMs);
    signal(this.newPid, "SIGQUIT");
    await waitUntil(
      `the new master ${this.newPid} did not exit`,
      () => !isAlive(this.newPid) && readPid(this.pidFile) === this.oldPid && readPid(this.oldbin) === undefined,
      this.timeoutMs,
    );
  }
}
