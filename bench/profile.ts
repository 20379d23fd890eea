/**
 * Where a worker's time goes, by sampling (stapxx-style, with perf's cpu-clock timer, which needs
 * no hardware counters): the share of kernel, nginx, libc and the Lua layer (LuaJIT, its JIT
 * traces, lua-nginx-module) while wrk drives one variant. The kernel's share is nearly all
 * network work, the same per request for variants that add no socket of their own (plain, floor,
 * cached, uncounted, rules), so plain's kernel share over a variant's gives that variant's CPU
 * per request relative to plain's, independently of how busy the rest of the machine is.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { NginxServer } from "../harness/nginx.ts";
import { workersOf } from "../harness/proc.ts";

export interface Profile {
  variant: string;
  /** Percent of the worker's samples. */
  kernel: number;
  nginx: number;
  libc: number;
  lua: number;
  other: number;
  /** plain's kernel share / this one's: CPU per request relative to plain. */
  cpuVsPlain?: number;
}

function shares(report: string): Omit<Profile, "variant"> {
  const p = { kernel: 0, nginx: 0, libc: 0, lua: 0, other: 0 };
  for (const m of report.matchAll(/^\s+([\d.]+)%\s+(.+?)\s*$/gm)) {
    const share = Number(m[1]);
    const dso = m[2]!;
    if (dso.startsWith("[kernel")) p.kernel += share;
    else if (dso === "nginx") p.nginx += share;
    else if (dso.startsWith("libc")) p.libc += share;
    else if (/luajit|lua_module|\[JIT\]/.test(dso)) p.lua += share;
    else p.other += share;
  }
  return p;
}

/** Samples the (single) worker of `nginx` for `seconds` while wrk keeps it busy. */
export async function profile(
  variant: string,
  nginx: NginxServer,
  seconds: number,
  connections: number,
  script?: string,
): Promise<Profile> {
  const [pid] = await workersOf(nginx);
  if (pid === undefined) throw new Error(`no worker for ${variant}`);
  const dir = mkdtempSync(join(tmpdir(), "gray-perf-"));
  try {
    const args = ["-t1", `-c${connections}`, `-d${seconds + 2}s`];
    if (script !== undefined) {
      writeFileSync(join(dir, "script.lua"), script);
      args.push("-s", join(dir, "script.lua"));
    }
    const wrk = spawn("wrk", [...args, `${nginx.url}/`], { stdio: "ignore" });
    const done = new Promise((resolve) => wrk.once("exit", resolve));
    await sleep(1000);
    const data = join(dir, "perf.data");
    execFileSync(
      "perf",
      ["record", "-q", "-e", "cpu-clock", "-F", "2000", "-o", data, "-p", String(pid), "--", "sleep", String(seconds)],
      { stdio: "ignore" },
    );
    await done;
    const report = execFileSync("perf", ["report", "-i", data, "--sort", "dso", "--stdio", "-g", "none"], {
      stdio: ["ignore", "pipe", "ignore"],
    }).toString();
    return { variant, ...shares(report) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
