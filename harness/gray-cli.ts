/** Runs the built `gray` CLI as an operator would: a separate process, its exit code and output. */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./paths.ts";

export const GRAY_BIN = join(ROOT, "dist", "node", "node-src", "cli", "gray.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function gray(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [GRAY_BIN, ...args],
      // maxBuffer: `gray export` / `list --json` of a large document print megabytes (execFile's default is 1 MiB).
      { env: { ...process.env, ...env }, timeout: 30000, maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A `gray` process left running (a release), to signal, read as it prints, and wait for. */
export interface RunningGray {
  child: ChildProcess;
  /** What it printed so far. */
  stdout(): string;
  stderr(): string;
  done: Promise<CliResult>;
}

/**
 * On a terminal: script(1) (util-linux) gives gray a pseudo-terminal, so its stdout is what a
 * terminal shows, and ^C written to its stdin is the terminal's SIGINT to gray.
 */
function onTerminal(args: string[]): [string, string[]] {
  const quote = (a: string) => `'${a.replace(/'/g, "'\\''")}'`;
  // script runs the command with $SHELL -c. `exec` makes gray replace the shell, so no shell
  // (dash does not exec a lone command, bash does) is left in the foreground group to die of ^C.
  const command = `exec ${[process.execPath, GRAY_BIN, ...args].map(quote).join(" ")}`;
  return ["script", ["-qefc", command, "/dev/null"]];
}

export function spawnGray(
  args: string[],
  env: Record<string, string> = {},
  { terminal = false }: { terminal?: boolean } = {},
): RunningGray {
  const [file, argv] = terminal ? onTerminal(args) : [process.execPath, [GRAY_BIN, ...args]];
  const child = spawn(file, argv, {
    // SHELL: dash, as on a fresh Debian machine, whatever shell the tests were started from.
    env: { ...process.env, ...env, ...(terminal ? { SHELL: "/bin/sh" } : {}) },
    stdio: [terminal ? "pipe" : "ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const done = new Promise<CliResult>((resolve) =>
    child.on("close", (code, signal) =>
      resolve({ code: code ?? (signal === null ? -1 : 128), stdout: out, stderr: err }),
    ),
  );
  return { child, stdout: () => out, stderr: () => err, done };
}
