/**
 * Store chaos under load: each fault is done to the router's store while the load driver runs,
 * then undone. One router (two workers) lives through every memcached fault in turn, so its
 * memory and its store connections are watched across all of them; the shared-dict fault needs
 * a dict of its own size and gets a second router. test/chaos.test.ts runs each case briefly
 * and checks the bars; bench/chaos.ts runs them longer and prints the README's table.
 *
 * The router reaches memcached through a TcpProxy: it counts the router's store connections,
 * delays replies for the slow case and swaps in a garbage-answering fake for the garbage case.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { GarbageMemcached } from "./fake-memcached.ts";
import { FlagStore, bulkSet } from "./flags.ts";
import { Load, type LoadSummary, loopbackClients } from "./load.ts";
import { MemcachedServer } from "./memcached.ts";
import { anonRssKib, workersOf } from "./proc.ts";
import type { Runtime } from "./runtime.ts";
import { RouterStack } from "./stack.ts";
import { type Column, markdownTable } from "./table.ts";
import { TcpProxy } from "./tcp-proxy.ts";

/** The router's memcached timeout_ms (its default): each connect, send and receive is bounded by it. */
export const TIMEOUT_MS = 50;
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
export const WORKERS = 2;
/** memcached.pool_size (its default): idle connections kept per worker. */
export const POOL_SIZE = 32;
/** The router's warning rate limit (WARN_INTERVAL_S in lua-src/gray/lookups.ts): one per worker per this. */
export const WARN_INTERVAL_S = 5;
/**
 * The workers' RssAnon, summed, may grow this much from warm-up to the last case: 2 MiB each.
 * The first faults grow each LuaJIT heap by about 0.5-1 MiB to its working size (failure paths,
 * garbage replies, stale reads) and it then stays flat; a leak of a few bytes per request passes
 * this within a 60 s soak (over a million requests), a few dozen within the CI run.
 */
export const RSS_GROWTH_BOUND_KIB = 4096;

/** Cached lookups expire quickly, so a recovered store is asked again soon (and a negative entry is short-lived). */
const CACHE_TTL_MS = 200;
/** memcached -m: the smallest it takes with its default 1 MB item size limit (-m 1 is refused). */
const TINY_MEMCACHED_MB = 2;
/** lua_shared_dict: the smallest nginx accepts (8k is refused). */
const TINY_DICT = "12k";
/** What a 12k dict holds: 31 short keys, tried by hand with set() until forcible evictions began. */
const TINY_DICT_KEYS = 31;
/** The load: clients on distinct 127.103.0.x addresses with keep-alive; the odd ones are flagged canary. */
const CLIENTS = 32;
const MAIN_CLIENTS = loopbackClients(CLIENTS, 103);
const FLAGGED = MAIN_CLIENTS.filter((_, i) => i % 2 === 0);

export interface CaseResult {
  name: string;
  /** Main load and probe together. */
  summary: LoadSummary;
  /** From the store's recovery to a flagged probe's first canary answer; undefined if none came within 3 s. */
  recoveryMs: number | undefined;
  /** The fault took effect (and the case's own check held): what shows it (probe answered stable, evictions, ...). */
  faultSeen: boolean;
  evidence: string;
  /** error.log lines written during the case, and the bound the warning rate limit allows. */
  logLines: number;
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

/** memcached (tiny), the proxy, a router behind it and the flags: what the cases act on. */
export class ChaosBed {
  private nextProbe = 1;

  private constructor(
    readonly memcached: MemcachedServer,
    readonly proxy: TcpProxy,
    readonly router: RouterStack,
    readonly flags: FlagStore,
    readonly workers: number[],
  ) {}

  static async start(runtime: Runtime, dictSize?: string): Promise<ChaosBed> {
    const memcached = await MemcachedServer.start(runtime, { memoryMb: TINY_MEMCACHED_MB });
    const proxy = await TcpProxy.start(memcached);
    const flags = new FlagStore(memcached.address);
    let router: RouterStack | undefined;
    try {
      router = await RouterStack.start({
        runtime,
        memcached: proxy,
        workers: WORKERS,
        cacheDictSize: dictSize,
        // Trusts loopback peers' X-Real-IP: the dict case's load poses as thousands of clients that way.
        options: { memcached: { timeout_ms: TIMEOUT_MS, pool_size: POOL_SIZE }, cache_ttl_ms: CACHE_TTL_MS, trusted_proxies: ["127.0.0.0/8"] },
      });
      const workers = await workersOf(router.nginx, WORKERS);
      if (workers.length !== WORKERS) throw new Error(`expected ${WORKERS} workers, error.log shows ${workers.length}`);
      const bed = new ChaosBed(memcached, proxy, router, flags, workers);
      await bed.flagClients();
      // Warm-up: the workers' Lua heaps, caches and pools settle before the first memory sample.
      await Load.start({ url: router.url, sources: MAIN_CLIENTS, durationMs: 1000 }).done();
      return bed;
    } catch (err) {
      await router?.stop();
      flags.close();
      await proxy.stop();
      await memcached.stop();
      throw err;
    }
  }

  /** (Re)stores the flags: the flagged main clients and every probe address handed out so far. */
  async flagClients(): Promise<void> {
    for (const key of [...FLAGGED, ...this.probesSoFar()]) await this.flags.set(key);
  }

  /** A flagged client address no request has come from yet, so the router has nothing cached for it. */
  async newProbe(): Promise<string> {
    const address = `127.104.0.${this.nextProbe++}`;
    await this.flags.set(address);
    return address;
  }

  private probesSoFar(): string[] {
    return Array.from({ length: this.nextProbe - 1 }, (_, i) => `127.104.0.${i + 1}`);
  }

  rssKib(): number {
    return this.workers.reduce((sum, pid) => sum + anonRssKib(pid), 0);
  }

  async stop(): Promise<void> {
    this.flags.close();
    await this.router.stop();
    await this.proxy.stop();
    await this.memcached.stop();
  }
}

/** What a fault leaves as evidence that it took effect, and any load of its own to count with the case. */
interface Evidence {
  seen: boolean;
  text: string;
  loads?: Load[];
}

export interface ChaosCase {
  name: string;
  /** Needs a router with a dict this size (its own bed). */
  dictSize?: string;
  /** Breaks the store; the returned function undoes it and resolves once the store is back. */
  inject(bed: ChaosBed, load: FaultLoad): Promise<() => Promise<Evidence>>;
}

/** The traffic around a fault: the flagged probe client started with it, the router's URL, how long the fault lasts. */
interface FaultLoad {
  probe: Load;
  url: string;
  faultMs: number;
}

/** The store failed the router: the flagged probe, with nothing cached, was answered stable. */
function probeSawStable(probe: Load): Evidence {
  const stable = probe.records.filter((r) => r.route === "stable").length;
  return { seen: stable > 0, text: `probe answered stable ${stable}×` };
}

const killed: ChaosCase = {
  name: "memcached killed (SIGKILL) and restarted",
  async inject(bed, { probe }) {
    await bed.memcached.kill();
    return async () => {
      await bed.memcached.startAgain();
      // It comes back empty, as a restarted memcached does; the operator's flags are set again.
      await bed.flagClients();
      return probeSawStable(probe);
    };
  },
};

const paused: ChaosCase = {
  name: `memcached paused (SIGSTOP) past the ${TIMEOUT_MS} ms timeout`,
  async inject(bed, { probe }) {
    await bed.memcached.pause();
    return async () => {
      await bed.memcached.resume();
      return probeSawStable(probe);
    };
  },
};

const SLOW_MS = 4 * TIMEOUT_MS;
const slow: ChaosCase = {
  name: `memcached answering slowly (${SLOW_MS} ms per reply)`,
  async inject(bed, { probe }) {
    bed.proxy.setMode({ kind: "delay", ms: SLOW_MS });
    return async () => {
      bed.proxy.setMode({ kind: "forward" });
      return probeSawStable(probe);
    };
  },
};

const garbage: ChaosCase = {
  name: "memcached answering garbage",
  async inject(bed, { probe }) {
    // Seeded by the case, so a failure replays; every kind of garbage at random.
    const fake = await GarbageMemcached.start(6);
    bed.proxy.retarget(fake);
    return async () => {
      bed.proxy.retarget(bed.memcached);
      await fake.stop();
      const evidence = probeSawStable(probe);
      return { seen: evidence.seen && fake.commandsAnswered > 0, text: `${evidence.text}, ${fake.commandsAnswered} commands answered with garbage` };
    };
  },
};

/** 1 KB values: the tiny memcached holds about two thousand, so a few batches evict everything older. */
const FILL_VALUE = "x".repeat(1000);
const FILL_BATCH = 2000;

const full: ChaosCase = {
  name: `memcached full (-m ${TINY_MEMCACHED_MB}, evicting)`,
  async inject(bed) {
    const evictionsBefore = await bed.flags.evictions();
    let filling = true;
    let batch = 0;
    const filler = (async () => {
      while (filling) {
        const first = batch++ * FILL_BATCH;
        await bulkSet(bed.memcached.address, Array.from({ length: FILL_BATCH }, (_, i) => `chaos:fill:${first + i}`), FILL_VALUE);
      }
    })();
    return async () => {
      filling = false;
      await filler;
      const evicted = (await bed.flags.evictions()) - evictionsBefore;
      const flagsLost = (await Promise.all(FLAGGED.map((k) => bed.flags.get(k)))).filter((v) => v === undefined).length;
      // The flags the fill evicted are set again, as an operator would on seeing them gone.
      await bed.flagClients();
      return { seen: evicted > 0, text: `${evicted} evictions, ${flagsLost}/${FLAGGED.length} flags evicted` };
    };
  },
};

const dictFull: ChaosCase = {
  name: `shared dict full (lua_shared_dict ${TINY_DICT}, many clients)`,
  dictSize: TINY_DICT,
  async inject(_bed, { probe, url, faultMs }) {
    let posed = 0;
    const flood = Load.start({
      url,
      sources: loopbackClients(CLIENTS / 2, 105),
      durationMs: faultMs + 60_000,
      // A new documentation-range address per request, as a trusted gateway would pass on.
      headers: () => ({ "x-real-ip": `2001:db8::${(++posed).toString(16)}` }),
    });
    return async () => {
      await flood.stop();
      // Several times more distinct clients within one cache TTL than the dict holds: it must evict.
      const perTtl = Math.round((posed * CACHE_TTL_MS) / faultMs);
      // Not a bar: with nothing cached every request asks memcached, and one that times out on this busy machine finds no stale entry, so stable.
      const stable = probeSawStable(probe);
      return { seen: perTtl > 3 * TINY_DICT_KEYS, text: `${posed} distinct clients, about ${perTtl} per ${CACHE_TTL_MS} ms cache TTL; ${stable.text}`, loads: [flood] };
    };
  },
};

export const CHAOS_CASES: ChaosCase[] = [killed, paused, slow, garbage, full, dictFull];

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

function logLines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

/** Runs one case on the bed with about `seconds` of load: healthy, faulted (half), recovered. */
export async function runCase(bed: ChaosBed, chaos: ChaosCase, seconds: number): Promise<CaseResult> {
  const url = bed.router.url;
  const totalMs = seconds * 1000;
  const faultMs = Math.max(1000, totalMs / 2);
  const logBefore = bed.router.errorLog().length;
  const rssBeforeKib = bed.rssKib();
  const started = Date.now();
  const main = Load.start({ url, sources: MAIN_CLIENTS, durationMs: totalMs + 60_000 });
  let maxStoreConnections = 0;
  const sampler = setInterval(() => (maxStoreConnections = Math.max(maxStoreConnections, bed.proxy.connections)), 10);
  let probe: Load | undefined;
  try {
    await sleep(Math.max(300, totalMs / 4));
    probe = Load.start({ url, sources: [await bed.newProbe()], durationMs: totalMs + 60_000, thinkMs: 10 });
    const recover = await chaos.inject(bed, { probe, url, faultMs });
    await sleep(faultMs);
    const evidence = await recover();
    const mark = probe.now();
    const recoveryMs = await recovery(probe, mark);
    await sleep(Math.max(300, totalMs / 4));
    await Promise.all([main.stop(), probe.stop()]);
    clearInterval(sampler);
    const summary = Load.combined([main, probe, ...(evidence.loads ?? [])]);
    const caseSeconds = (Date.now() - started) / 1000;
    const lines = logLines(bed.router.errorLog().slice(logBefore));
    return {
      name: chaos.name,
      summary,
      recoveryMs,
      faultSeen: evidence.seen,
      evidence: evidence.text,
      logLines: lines.length,
      // Each worker warns on its first failure, then at most once per interval.
      logBound: WORKERS * (Math.ceil(caseSeconds / WARN_INTERVAL_S) + 1),
      logProblems: lines.filter((l) => /\[(error|crit|alert|emerg)\]/.test(l) || /writing a global Lua variable/.test(l)),
      maxStoreConnections,
      storeConnectionsAfter: bed.proxy.connections,
      rssBeforeKib,
      rssAfterKib: bed.rssKib(),
      seconds: caseSeconds,
    };
  } finally {
    clearInterval(sampler);
    await Promise.all([main.stop(), probe?.stop()]);
  }
}

export interface ChaosRun {
  /** One per bed: its workers' RssAnon sum after warm-up and after its last case. */
  memory: { dict: string; firstKib: number; lastKib: number }[];
}

/** Every case, beds started as the cases need them; onResult is called as each case ends. */
export async function runChaos(runtime: Runtime, seconds: number, onResult: (result: CaseResult) => void, cases = CHAOS_CASES): Promise<ChaosRun> {
  const run: ChaosRun = { memory: [] };
  const dictSizes = [...new Set(cases.map((c) => c.dictSize))];
  for (const dictSize of dictSizes) {
    const bed = await ChaosBed.start(runtime, dictSize);
    try {
      const firstKib = bed.rssKib();
      for (const chaos of cases.filter((c) => c.dictSize === dictSize)) onResult(await runCase(bed, chaos, seconds));
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
  if (r.summary.maxMs >= LATENCY_BOUND_MS) problems.push(`slowest answer ${r.summary.maxMs.toFixed(1)} ms ≥ ${LATENCY_BOUND_MS} ms`);
  if (r.recoveryMs === undefined || r.recoveryMs >= RECOVERY_BOUND_MS) problems.push(`recovery ${r.recoveryMs?.toFixed(0) ?? "none within 3 s"} ≥ ${RECOVERY_BOUND_MS} ms`);
  if (!r.faultSeen) problems.push(`the fault did not show: ${r.evidence}`);
  if (r.logLines > r.logBound) problems.push(`${r.logLines} error.log lines > ${r.logBound}`);
  if (r.logProblems.length > 0) problems.push(`error.log: ${r.logProblems.slice(0, 3).join(" / ")}`);
  const connections = Math.max(r.maxStoreConnections, r.storeConnectionsAfter);
  if (connections > WORKERS * POOL_SIZE) problems.push(`${connections} store connections > ${WORKERS} workers × pool ${POOL_SIZE}`);
  return problems;
}

type Row = { runtime: string; result: CaseResult };

const COLUMNS: Column<Row>[] = [
  { title: "case", cell: (r) => r.result.name },
  { title: "runtime", cell: (r) => r.runtime },
  { title: "sent", numeric: true, cell: (r) => r.result.summary.sent },
  { title: "failed", numeric: true, cell: (r) => r.result.summary.failed },
  { title: "non-2xx", numeric: true, cell: (r) => r.result.summary.non2xx },
  { title: "p99 ms", numeric: true, cell: (r) => r.result.summary.p99Ms.toFixed(1) },
  { title: "max ms", numeric: true, cell: (r) => r.result.summary.maxMs.toFixed(1) },
  { title: "recovery ms", numeric: true, cell: (r) => r.result.recoveryMs?.toFixed(0) ?? "none" },
  { title: "log lines", numeric: true, cell: (r) => `${r.result.logLines} (≤ ${r.result.logBound})` },
  { title: "store conns max", numeric: true, cell: (r) => r.result.maxStoreConnections },
  { title: "RssAnon KiB before → after", numeric: true, cell: (r) => `${r.result.rssBeforeKib} → ${r.result.rssAfterKib}` },
];

/** The README's table: one row per case and runtime. */
export function renderChaosTable(rows: Row[]): string {
  return markdownTable(COLUMNS, rows);
}
