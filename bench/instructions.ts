/**
 * The fast path counted instead of timed: each pattern's router and its floor run as one nginx
 * process under valgrind's callgrind, and the instructions it executes per request (steady state,
 * one keep-alive client) are counted. A count does not move with other tenants of the machine, so
 * a change to the request path shows in it to the instruction where the CPU-time pairs need many
 * runs; it is not time (a cache miss costs more than an add), so the pairs stay the contract.
 * Native runtime only (valgrind runs nginx here).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { logProblems } from "../harness/nginx.ts";
import { freePort } from "../harness/net.ts";
import { renderMain } from "../node-src/nginx-conf.ts";
import type { Bed } from "./measure.ts";
import { type Variant, VARIANTS } from "./variants.ts";

export const INSTRUCTION_PAIRS = [
  { pattern: "exec (route())", router: "cached", floor: "floor" },
  { pattern: "variable (route_upstream())", router: "cached-var", floor: "floor-var" },
] as const;

export interface InstructionRow {
  pattern: string;
  floor: number;
  router: number;
}

/** n requests one after another on one keep-alive connection; throws on an answer other than 200. */
async function send(port: number, n: number): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    for (let i = 0; i < n; i++) {
      const status = await new Promise<number>((resolve, reject) => {
        request({ host: "127.0.0.1", port, path: "/", agent }, (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        })
          .on("error", reject)
          .end();
      });
      if (status !== 200) throw new Error(`instructions: request ${i} answered ${status}`);
    }
  } finally {
    agent.destroy();
  }
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 240; i++) {
    if (child.exitCode !== null) throw new Error(`instructions: nginx under valgrind exited (${child.exitCode})`);
    try {
      await send(port, 1);
      return;
    } catch {
      await sleep(250);
    }
  }
  throw new Error("instructions: nginx under valgrind never answered");
}

function callgrindControl(pid: number, command: "--zero" | "--dump"): void {
  execFileSync("callgrind_control", [command, String(pid)], { stdio: "ignore" });
}

/** Instructions per request of one variant: `warm` requests to compile its traces and fill its caches, then `counted` counted. */
async function countVariant(bed: Bed, v: Variant, warm: number, counted: number): Promise<number> {
  const port = await freePort();
  const prefix = mkdtempSync(join(tmpdir(), "gray-callgrind-"));
  mkdirSync(join(prefix, "logs"));
  const http = v.http(bed.luaPaths, { ...bed.ports, listen: port });
  writeFileSync(join(prefix, "nginx.conf"), renderMain({ flavour: "debian", workers: 1, masterProcess: false, http }));
  const out = join(prefix, "callgrind.out");
  const nginx = ["nginx", "-p", prefix, "-c", "nginx.conf", "-e", "logs/error.log", "-g", "daemon off;"];
  const child = spawn("valgrind", ["--tool=callgrind", `--callgrind-out-file=${out}`, ...nginx], { stdio: "ignore" });
  try {
    await waitForPort(port, child);
    await send(port, warm);
    callgrindControl(child.pid!, "--zero");
    await send(port, counted);
    callgrindControl(child.pid!, "--dump");
    const summary = /^summary: (\d+)/m.exec(readFileSync(`${out}.1`, "utf8"));
    if (summary === null) throw new Error("instructions: callgrind's dump has no summary");
    const problems = logProblems(readFileSync(join(prefix, "logs", "error.log"), "utf8"));
    if (problems.length > 0) throw new Error(`instructions: ${v.name} logged ${problems.join("\n")}`);
    return Number(summary[1]) / counted;
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once("exit", resolve)));
    rmSync(prefix, { recursive: true, force: true });
  }
}

export async function instructionPairs(bed: Bed, warm: number, counted: number): Promise<InstructionRow[]> {
  const byName = (name: string) => VARIANTS.find((v) => v.name === name)!;
  const rows: InstructionRow[] = [];
  for (const p of INSTRUCTION_PAIRS) {
    rows.push({
      pattern: p.pattern,
      floor: await countVariant(bed, byName(p.floor), warm, counted),
      router: await countVariant(bed, byName(p.router), warm, counted),
    });
  }
  return rows;
}
