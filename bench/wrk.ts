/** Runs wrk (Debian's package) and reads its summary: requests per second and latency percentiles. */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface WrkResult {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** The slowest request of the run. */
  maxMs: number;
  requests: number;
  /** Socket errors and non-2xx/3xx responses wrk counted. */
  errors: number;
}

export interface WrkRun {
  url: string;
  seconds: number;
  connections: number;
  script?: string;
  /** Run wrk on these CPUs only (taskset's list syntax). */
  cpus?: string;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60000 };

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) throw new Error(`wrk latency not understood: ${text}`);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

export function parseWrk(out: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const p50 = /^\s+50%\s+(\S+)$/m.exec(out);
  const p99 = /^\s+99%\s+(\S+)$/m.exec(out);
  const total = /(\d+) requests in/.exec(out);
  // "Latency   1.20ms  300.00us  14.39ms  81.96%": average, deviation, max, share within one deviation.
  const latency = /^\s+Latency\s+\S+\s+\S+\s+(\S+)/m.exec(out);
  if (!rps || !p50 || !p99 || !total || !latency) throw new Error(`wrk output not understood:\n${out}`);
  let errors = 0;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (socket) errors += socket.slice(1).reduce((n, v) => n + Number(v), 0);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) errors += Number(non2xx[1]);
  return {
    rps: Number(rps[1]),
    p50Ms: ms(p50[1]!),
    p99Ms: ms(p99[1]!),
    maxMs: ms(latency[1]!),
    requests: Number(total[1]),
    errors,
  };
}

const scriptDir = mkdtempSync(join(tmpdir(), "gray-wrk-"));
let scripts = 0;

export function wrk(run: WrkRun): Promise<WrkResult> {
  const args = ["-t1", `-c${run.connections}`, `-d${run.seconds}s`, "--latency"];
  if (run.script) {
    const file = join(scriptDir, `script${scripts++}.lua`);
    writeFileSync(file, run.script);
    args.push("-s", file);
  }
  args.push(run.url);
  return new Promise((resolve, reject) => {
    const [command, argv] = run.cpus === undefined ? ["wrk", args] : ["taskset", ["-c", run.cpus, "wrk", ...args]];
    execFile(command, argv, { timeout: (run.seconds + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`wrk failed: ${err.message}\n${stderr}`));
      else resolve(parseWrk(stdout));
    });
  });
}
