/**
 * nginx's binary upgrade, driven through the pid file as nginx itself records it: USR2 makes the
 * master rename PATH to PATH.oldbin and start a new master (the binary on disk, which re-reads
 * the configuration) that writes PATH; WINCH retires the old master's workers; QUIT ends the old
 * master. Until then, HUP on the old master brings its workers back without re-reading the
 * configuration, and QUIT on the new master makes the old one rename PATH.oldbin back to PATH.
 * Used by `gray upgrade`, the harness's upgrade scenarios and its NginxServer. Linux: reads /proc.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, readFileSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
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

/** How a running master was started: its argv, and its working directory and root as seen from here. */
export interface MasterCommand {
  argv: string[];
  cwd: string;
  /** /proc/PID/root: paths inside the master's mount namespace (a container's) resolve under it. */
  root: string;
}

export function masterCommand(pid: number): MasterCommand {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8")
      .split("\0")
      .filter((a) => a !== "");
    // nginx overwrites its argv with its title, "nginx: master process " and the command line as typed.
    const title = /^nginx: master process (.*)$/.exec(raw.join(" "));
    const argv = title ? title[1]!.split(/\s+/) : raw;
    return { argv, cwd: readlinkSync(`/proc/${pid}/cwd`), root: `/proc/${pid}/root` };
  } catch (err) {
    throw new UpgradeError(`cannot read how nginx master ${pid} was started (/proc/${pid}): ${(err as Error).message}`);
  }
}

/** The value after a flag in argv (nginx -p PREFIX -c CONF -e LOG). */
function argAfter(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

/**
 * Why USR2 would fail to start a new master, if it would: nginx re-executes its own argv[0] with
 * execve(), which does not search PATH, so a master started as plain "nginx" cannot upgrade.
 */
export function reexecProblem(pid: number): string | undefined {
  const { argv, cwd, root } = masterCommand(pid);
  const binary = argv[0] ?? "";
  const path = resolve(cwd, binary);
  try {
    accessSync(join(root, path), constants.X_OK);
    if (!statSync(join(root, path)).isFile()) throw new Error("not a file");
    return undefined;
  } catch {
    const how = isAbsolute(binary)
      ? `${binary} is no longer an executable file`
      : `it was started as "${binary}", not by its absolute path, and ${path} is not an executable file`;
    return `nginx master ${pid} cannot re-execute itself on USR2: ${how} (execve() would fail); start nginx by the absolute path of its binary, e.g. /usr/sbin/nginx`;
  }
}

/** What `gray reload` found. */
export interface ReloadOutcome {
  ok: boolean;
  /** What nginx said: `nginx -t`'s output, or the error.log lines written from the HUP on. */
  log: string[];
}

/**
 * `nginx -t` with the master's own binary, prefix and conf, then HUP, then error.log watched until
 * new workers start (the configuration was taken) or nginx logs why it kept the old one.
 */
export async function reloadMaster(
  pidFile: string,
  options: { errorLog?: string; timeoutMs?: number } = {},
): Promise<ReloadOutcome> {
  const pid = runningMaster(pidFile);
  const { argv, cwd } = masterCommand(pid);
  const prefix = argAfter(argv, "-p");
  const conf = argAfter(argv, "-c");
  const binary = isAbsolute(argv[0] ?? "") ? argv[0]! : readlinkSync(`/proc/${pid}/exe`);
  const located = [...(prefix ? ["-p", prefix] : []), ...(conf ? ["-c", conf] : [])];
  const test = spawnSync(binary, ["-q", "-t", ...located], { encoding: "utf8", cwd, timeout: 20000 });
  if (test.error) throw new UpgradeError(`cannot run ${binary} -t: ${test.error.message}`);
  if (test.status !== 0) return { ok: false, log: `${test.stdout}${test.stderr}`.trim().split("\n") };

  const logArg = options.errorLog ?? argAfter(argv, "-e");
  if (logArg === undefined)
    throw new UpgradeError(
      "cannot tell where nginx's error.log is: give --error-log PATH (the master was not started with -e)",
    );
  const logPath = resolve(cwd, prefix && !isAbsolute(logArg) ? join(prefix, logArg) : logArg);
  const offset = statSync(logPath).size;
  signal(pid, "SIGHUP");
  const deadline = Date.now() + (options.timeoutMs ?? 10000);
  for (;;) {
    const log = readFileSync(logPath).subarray(offset).toString("utf8");
    const verdict = reloadVerdict(log);
    if (verdict !== undefined) {
      return { ok: verdict === "taken", log: log.split("\n").filter((l) => l !== "") };
    }
    if (Date.now() > deadline)
      throw new UpgradeError(
        `nginx master ${pid} gave no verdict on the reload within ${options.timeoutMs ?? 10000} ms (error.log: ${logPath})`,
      );
    await sleep(20);
  }
}

/**
 * The master's verdict on a reload, from the error.log lines written since the HUP: "refused"
 * when it logged an error after "reconfiguring" (the old workers keep serving), "taken" once it
 * started new workers, undefined while it has said neither. Only the master's own lines count:
 * a worker's error about some request is no verdict.
 */
export function reloadVerdict(log: string): "taken" | "refused" | undefined {
  const master = /\] (\d+)#\d+: reconfiguring/.exec(log)?.[1];
  if (master === undefined) return undefined;
  if (new RegExp(`\\[(emerg|alert|crit|error)\\] ${master}#`).test(log)) return "refused";
  return new RegExp(`\\] ${master}#\\d+: start worker process`).test(log) ? "taken" : undefined;
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
    if (readPid(`${pidFile}.oldbin`) !== undefined)
      throw new UpgradeError(`${pidFile}.oldbin exists: an upgrade is already under way`);
    // Fail before the signal, not after waiting out the timeout for a master that cannot appear.
    const problem = reexecProblem(oldPid);
    if (problem !== undefined) throw new UpgradeError(problem);
    signal(oldPid, "SIGUSR2");
    let newPid: number | undefined;
    await waitUntil(
      `no new master wrote ${pidFile} (see nginx's error.log)`,
      () => {
        const pid = readPid(pidFile);
        if (readPid(`${pidFile}.oldbin`) === oldPid && pid !== undefined && pid !== oldPid && isAlive(pid))
          newPid = pid;
        return newPid !== undefined && childrenOf(newPid).length > 0;
      },
      timeoutMs,
    );
    return new BinaryUpgrade(pidFile, oldPid, newPid!, timeoutMs);
  }

  /** WINCH: the old workers stop accepting and leave once their requests are done; only the new master serves. */
  async retireOldWorkers(): Promise<void> {
    signal(this.oldPid, "SIGWINCH");
    await waitUntil(
      `the old master ${this.oldPid}'s workers did not exit`,
      () => this.oldWorkers().length === 0,
      this.timeoutMs,
    );
  }

  /** QUIT the old master: the upgrade is done and can no longer be undone. */
  async finish(): Promise<void> {
    signal(this.oldPid, "SIGQUIT");
    await waitUntil(
      `the old master ${this.oldPid} did not exit`,
      () => !isAlive(this.oldPid) && readPid(this.oldbin) === undefined,
      this.timeoutMs,
    );
  }

  /** HUP the old master (its workers come back, on its configuration), then QUIT the new one. */
  async rollback(): Promise<void> {
    signal(this.oldPid, "SIGHUP");
    await waitUntil(
      `the old master ${this.oldPid} started no workers`,
      () => this.oldWorkers().length > 0,
      this.timeoutMs,
    );
    signal(this.newPid, "SIGQUIT");
    await waitUntil(
      `the new master ${this.newPid} did not exit`,
      () => !isAlive(this.newPid) && readPid(this.pidFile) === this.oldPid && readPid(this.oldbin) === undefined,
      this.timeoutMs,
    );
  }
}
