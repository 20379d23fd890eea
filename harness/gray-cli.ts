/** Runs the built `gray` CLI as an operator would: a separate process, its exit code and output. */
import { execFile } from "node:child_process";
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
