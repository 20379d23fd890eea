/**
 * Running the chaos cases: load before, during and after each fault, what the router did
 * meanwhile (answers, recovery, error.log, store connections, memory), and the bars it must meet.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Load, type LoadSummary } from "../load.ts";
import { logProblems } from "../nginx.ts";
import type { Runtime } from "../runtime.ts";
import { ChaosBed, IN_DOCUMENT, MAIN_CLIENTS, POOL_SIZE, STORE_CONNECTIONS_BOUND, TIMEOUT_MS, WORKERS } from "./bed.ts";
import { CHAOS_CASES, type ChaosCase } from "./cases.ts";

/**
 * Every request must be answered within the timeout plus this. A failing lookup costs one
 * timeout (the worker then rests from the store), the rest is scheduling: two cores shared by
 * nginx, the load driver, the proxy and other people's benchmarks. A request waiting on a
 * stalled store without its timeout would take the whole fault (≥ 1 s) and fail the bar.
 */
export const LATENCY_MARGIN_MS = 250;
export const LATENCY_BOUND_MS = TIMEOUT_MS + LATENCY_MARGIN_MS;
/** After the store is back, a flagged client must be routed canary again within this. */
export const RECOVERY_BOUND_MS = 1000;
/**
 * The router's warning rate limit (WARN_INTERVAL_S in lua-src/gray/lookups.ts and snapshot.ts): one
 * per worker per this from each warner: the per-IP lookups, and each kind of problem the rules
 * timer reports (ProblemKind in snapshot.ts: store, gone, older, refused, unsigned, write-back,
 * dict, bug). A store answering garbage shows most kinds in turn.
 */
const WARN_INTERVAL_S = 5;
const WARNERS = 1 + 8;
/** A store that comes back empty: one router writes its revision back, a warning and a notice. */
const WRITE_BACK_LINES = 2;
/**
 * The workers' RssAnon, summed, may grow this much from warm-up to the last case: 2 MiB each.
 * The first faults grow each LuaJIT heap by about 0.5-1 MiB to its working size (failure paths,
 * garbage replies, stale reads) and it then stays flat; a leak of a few bytes per request passes
 * this within a 60 s soak (over a million requests), a few dozen within the CI run.
 */
export const RSS_GROWTH_BOUND_KIB = 4096;

export interface CaseResult {
  name: string;
  /** Main load and probes together. */
  summary: LoadSummary;
  /** Answers to the client flagged in the rules document (throughout the case), and how many were not canary. */
  documentAnswers: number;
  documentNotCanary: number;
  /** From the store's recovery to a flagged probe's first canary answer; undefined if none came within 3 s. */
  recoveryMs: number | undefined;
  /** The fault took effect (and the case's own check held): what shows it (probe answered stable, evictions, ...). */
  faultSeen: boolean;
  evidence: string;
  /** error.log lines written during the case, and how many the warning rate limit allows. */
  logLines: string[];
  logBound: number;
  /** Lines of error.log at error level or worse (and global writes): none expected. */
  logProblems: string[];
  /** Most store connections open at once during the case, and open after it. */
  maxStoreConnections: number;
  storeConnectionsAfter: number;
  /** Sum over the workers of RssAnon, before and after the case. */
  rssBeforeKib: number;
  rssAfterKib: number;
  seconds: number;
}

/** Waits up to 3 s for the probe's first canary answer to a request sent at or after `mark`. */
async function recovery(probe: Load, mark: number): Promise<number | undefined> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const first = probe.records.find((r) => r.at >= mark && r.route === "canary");
    if (first !== undefined) return first.at + first.ms - mark;
    if (Date.now() > deadline) return undefined;
    await sleep(20);
  }
}

/** Runs one case on the bed with about `seconds` of load: healthy, faulted (half), recovered. */
export async function runChaosCase(bed: ChaosBed, chaos: ChaosCase, seconds: number): Promise<CaseResult> {
  const url = bed.router.url;
  const totalMs = seconds * 1000;
  const faultMs = Math.max(1000, totalMs / 2);
  const logBefore = bed.router.errorLog().length;
  const rssBeforeKib = bed.rssKib();
  const started = Date.now();
  const main = Load.start({ url, sources: MAIN_CLIENTS, durationMs: totalMs + 60_000 });
  // The rules document is in memory: this client must be canary before, during and after the fault.
  const inDocument = Load.start({ url, sources: [IN_DOCUMENT], durationMs: totalMs + 60_000, thinkMs: 10 });
  let maxStoreConnections = 0;
  const sampler = setInterval(() => (maxStoreConnections = Math.max(maxStoreConnections, bed.proxy.connections)), 10);
  let probe: Load | undefined;
  try {
    await sleep(Math.max(300, totalMs / 4));
    const probeSource = await bed.newProbe();
    const recover = await chaos.inject(bed, { url, faultMs });
    // Started into the fault: its first lookup meets the broken store, with nothing of it cached.
    probe = Load.start({ url, sources: [probeSource], durationMs: totalMs + 60_000, thinkMs: 10 });
    await sleep(faultMs);
    const evidence = await recover(probe);
    const mark = probe.now();
    const recoveryMs = await recovery(probe, mark);
    await sleep(Math.max(300, totalMs / 4));
    await Promise.all([main.stop(), probe.stop(), inDocument.stop()]);
    clearInterval(sampler);
    const summary = Load.combined([main, probe, inDocument, ...(evidence.loads ?? [])]);
    const documentAnswered = inDocument.records.filter((r) => r.status >= 200 && r.status < 300);
    const caseSeconds = (Date.now() - started) / 1000;
    const log = bed.router.errorLog().slice(logBefore);
    return {
      name: chaos.name,
      summary,
      documentAnswers: documentAnswered.length,
      documentNotCanary: documentAnswered.filter((r) => r.route !== "canary").length,
      recoveryMs,
      faultSeen: evidence.seen,
      evidence: evidence.text,
      logLines: log.split("\n").filter((l) => l.trim() !== ""),
      // Each worker's warners warn on their first failure, then at most once per interval; and a write-back.
      logBound: WARNERS * WORKERS * (Math.ceil(caseSeconds / WARN_INTERVAL_S) + 1) + WRITE_BACK_LINES,
      logProblems: logProblems(log),
      maxStoreConnections,
      storeConnectionsAfter: bed.proxy.connections,
      rssBeforeKib,
      rssAfterKib: bed.rssKib(),
      seconds: caseSeconds,
    };
  } finally {
    clearInterval(sampler);
    await Promise.all([main.stop(), probe?.stop(), inDocument.stop()]);
  }
}

export interface ChaosRun {
  /** One per bed: its workers' RssAnon sum after warm-up and after its last case. */
  memory: { dict: string; firstKib: number; lastKib: number }[];
}

/** Every case, beds started as the cases need them; onResult is called as each case ends. */
export async function runChaos(
  runtime: Runtime,
  seconds: number,
  onResult: (result: CaseResult) => void,
  cases = CHAOS_CASES,
): Promise<ChaosRun> {
  const run: ChaosRun = { memory: [] };
  const dictSizes = [...new Set(cases.map((c) => c.dictSize))];
  for (const dictSize of dictSizes) {
    const bed = await ChaosBed.start(runtime, dictSize);
    try {
      const firstKib = bed.rssKib();
      for (const chaos of cases.filter((c) => c.dictSize === dictSize))
        onResult(await runChaosCase(bed, chaos, seconds));
      run.memory.push({ dict: dictSize ?? "10m", firstKib, lastKib: bed.rssKib() });
    } finally {
      await bed.stop();
    }
  }
  return run;
}

/** The bars every case must meet; the problems, empty when it met them. */
export function missedBars(r: CaseResult): string[] {
  const problems: string[] = [];
  if (r.summary.failed > 0) problems.push(`${r.summary.failed} failed ${JSON.stringify(r.summary.errors)}`);
  if (r.summary.non2xx > 0) problems.push(`${r.summary.non2xx} non-2xx`);
  if (r.summary.maxMs >= LATENCY_BOUND_MS)
    problems.push(`slowest answer ${r.summary.maxMs.toFixed(1)} ms ≥ ${LATENCY_BOUND_MS} ms`);
  if (r.recoveryMs === undefined || r.recoveryMs >= RECOVERY_BOUND_MS)
    problems.push(`recovery ${r.recoveryMs?.toFixed(0) ?? "none within 3 s"} ≥ ${RECOVERY_BOUND_MS} ms`);
  if (!r.faultSeen) problems.push(`the fault did not show: ${r.evidence}`);
  if (r.documentAnswers === 0) problems.push("the client flagged in the rules document got no answer");
  if (r.documentNotCanary > 0)
    problems.push(
      `the client flagged in the rules document was not canary ${r.documentNotCanary}× of ${r.documentAnswers}`,
    );
  if (r.logLines.length > r.logBound)
    problems.push(`${r.logLines.length} error.log lines > ${r.logBound}:\n${r.logLines.join("\n")}`);
  if (r.logProblems.length > 0) problems.push(`error.log: ${r.logProblems.slice(0, 3).join(" / ")}`);
  const connections = Math.max(r.maxStoreConnections, r.storeConnectionsAfter);
  if (connections > STORE_CONNECTIONS_BOUND)
    problems.push(
      `${connections} store connections > ${STORE_CONNECTIONS_BOUND} (${WORKERS} workers × (pool ${POOL_SIZE} + the rules check's 1))`,
    );
  return problems;
}
