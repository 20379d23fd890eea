/**
 * The release recipes of seeds 000-003 done under live traffic, each step checked by the
 * version that answered the requests sent after it. A scenario starts what it needs, keeps the
 * load driver running throughout, stops everything, and returns the load's summary: the bar is
 * 0 failed and 0 non-2xx. test/release-scenarios.test.ts runs them briefly on each runtime;
 * bench/release.ts runs them longer and prints the README's table.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { BinaryUpgrade } from "../node-src/nginx-master.ts";
import { parseOptions } from "../lua-src/gray/options.ts";
import { pointerKey } from "../lua-src/gray/document.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { FlagStore } from "./flags.ts";
import { Load, type LoadOptions, type LoadSummary, loopbackClients } from "./load.ts";
import { MemcachedServer } from "./memcached.ts";
import { readRules, setWeight } from "./rules.ts";
import type { Runtime } from "./runtime.ts";
import { type Column, markdownTable } from "./table.ts";
import { AppCopy, FAILOVER_PROXY, RouterStack, type RouterStackOptions } from "./stack.ts";
import { canaryByWeight } from "./weight-split.ts";

export interface ScenarioResult {
  name: string;
  summary: LoadSummary;
  /** What answered after each step, e.g. "USR2: v1+v2". */
  steps: string[];
}

export interface Scenario {
  name: string;
  /** Runs with about `seconds` of load; throws if a step did not serve what it should. */
  run(runtime: Runtime, seconds: number): Promise<ScenarioResult>;
}

/** Concurrent clients, each its own source address (127.101.0.x) and keep-alive connection. */
export const CLIENTS = 32;
const LOAD_CLIENTS = loopbackClients(CLIENTS, 101);

/** A router option that makes changes in memcached route within a few hundred ms. */
const CACHE_TTL_MS = 200;

/**
 * Sets the default canary's weight in the rules document (a new revision, as `gray weight` does)
 * and waits until the router's /gray/status reports it (its one worker has loaded the revision).
 */
async function weight(router: RouterStack, memcached: MemcachedServer, percent: number): Promise<void> {
  await setWeight(memcached.address, "", percent);
  const deadline = Date.now() + CACHE_TTL_MS + 2000;
  while ((await fetchStatus(router.statusUrl)).canaries.canary?.weight !== percent) {
    if (Date.now() > deadline) throw new Error(`weight ${percent} not loaded within ${CACHE_TTL_MS + 2000} ms`);
    await sleep(20);
  }
}

/** The release a router answers with, set per configuration: tells a reload's or an upgrade's generations apart. */
export const releaseHeader = (release: string) => [`add_header X-Release ${release} always;`];
export const byRelease: LoadOptions["label"] = (r) => String(r.headers["x-release"]);

/** Load running through the scenario's steps; each step is checked by what answered after it. */
class Steps {
  readonly lines: string[] = [];
  readonly load: Load;
  private readonly dwellMs: number;

  constructor(url: string, seconds: number, steps: number, label?: LoadOptions["label"]) {
    this.dwellMs = Math.max(300, (seconds * 1000) / steps);
    // The time budget outlasts the steps (their actions and settling included); the scenario stops the load when they are done.
    this.load = Load.start({ url, sources: LOAD_CLIENTS, durationMs: 2 * steps * this.dwellMs + 60_000, label });
  }

  /**
   * Does `action`, waits `settleMs` (a change that takes effect asynchronously), lets traffic flow
   * for a dwell, then checks that the requests sent meanwhile were answered by `served` (each
   * of them) or, with `mayServe`, by some of those.
   */
  async step(
    what: string,
    action: () => Promise<unknown>,
    want: { served?: string[]; mayServe?: string[]; settleMs?: number },
  ): Promise<void> {
    await action();
    if (want.settleMs) await sleep(want.settleMs);
    const from = this.load.now();
    await sleep(this.dwellMs);
    const answered = Object.keys(this.load.summary(from).routes).sort();
    const line = `${what}: ${answered.join("+") || "nothing"}`;
    const expected = want.served ?? [];
    const allowed = [...expected, ...(want.mayServe ?? [])];
    const ok =
      answered.length > 0 && expected.every((v) => answered.includes(v)) && answered.every((v) => allowed.includes(v));
    if (!ok)
      throw new Error(
        `${line}; expected ${expected.join("+")}${want.mayServe ? ` (may also be ${want.mayServe.join("+")})` : ""}`,
      );
    this.lines.push(line);
  }

  async finish(name: string): Promise<ScenarioResult> {
    return { name, summary: await this.load.stop(), steps: this.lines };
  }
}

/** Starts memcached and a router on it, runs body, and stops them whatever happens. */
async function withRouter<T>(
  runtime: Runtime,
  config: Omit<RouterStackOptions, "runtime" | "memcached">,
  body: (router: RouterStack, memcached: MemcachedServer, flags: FlagStore) => Promise<T>,
): Promise<T> {
  const memcached = await MemcachedServer.start(runtime);
  const flags = new FlagStore(memcached.address);
  let router: RouterStack | undefined;
  try {
    router = await RouterStack.start({ ...config, runtime, memcached });
    return await body(router, memcached, flags);
  } finally {
    flags.close();
    await router?.stop();
    await memcached.stop();
  }
}

/** Starts two app copies (a, b) answering `version`, runs body, and stops them whatever happens. */
async function withCopies<T>(
  runtime: Runtime,
  names: [string, string],
  body: (a: AppCopy, b: AppCopy) => Promise<T>,
): Promise<T> {
  const copies: AppCopy[] = [];
  try {
    for (const name of names) copies.push(await AppCopy.start(runtime, name));
    return await body(copies[0]!, copies[1]!);
  } finally {
    for (const copy of copies) await copy.stop();
  }
}

const weightRamp: Scenario = {
  name: "weight 0 → 100 through memcached",
  run: (runtime, seconds) =>
    withRouter(runtime, { options: { cache_ttl_ms: CACHE_TTL_MS } }, async (router, memcached) => {
      const weights = [0, 1, 10, 50, 100];
      const options = parseOptions({});
      if (typeof options === "string") throw new Error(options);
      const steps = new Steps(router.url, seconds, weights.length);
      for (const w of weights) {
        // Exactly the versions the weight gives these clients: canary when one of them falls under it, stable when one does not.
        const canary = canaryByWeight(options, LOAD_CLIENTS, w).size;
        const served = [...(canary < LOAD_CLIENTS.length ? ["stable"] : []), ...(canary > 0 ? ["canary"] : [])];
        await steps.step(`weight ${w}`, () => weight(router, memcached, w), { served });
      }
      return steps.finish(weightRamp.name);
    }),
};

const RELOADS = 10;

const reloads: Scenario = {
  name: `nginx -s reload ×${RELOADS}, config changed each time`,
  run: (runtime, seconds) =>
    withRouter(runtime, { serverExtra: releaseHeader("conf0") }, async (router) => {
      const steps = new Steps(router.url, seconds, RELOADS + 1, byRelease);
      await steps.step("start", async () => undefined, { served: ["conf0"] });
      for (let i = 1; i <= RELOADS; i++) {
        await steps.step(
          `reload ${i}`,
          async () => {
            const result = await router.reload(undefined, { serverExtra: releaseHeader(`conf${i}`) });
            if (!result.ok) throw new Error(`reload ${i} refused: ${result.log}`);
          },
          { served: [`conf${i}`] },
        );
      }
      return steps.finish(reloads.name);
    }),
};

const blueGreen: Scenario = {
  name: "blue/green swap (seed 001)",
  run: (runtime, seconds) =>
    withCopies(runtime, ["v1", "v1"], (a, b) =>
      withRouter(runtime, { stable: [a.address, b.address] }, async (router) => {
        const steps = new Steps(router.url, seconds, 6);
        const upstream = (downA: boolean, downB: boolean) => ({
          stable: [`${a.address}${downA ? " down" : ""}`, `${b.address}${downB ? " down" : ""}`],
        });
        const reload = async (downA: boolean, downB: boolean) => {
          const result = await router.reload(undefined, upstream(downA, downB));
          if (!result.ok) throw new Error(`reload refused: ${result.log}`);
        };
        await steps.step("both up", async () => undefined, { served: ["v1"] });
        await steps.step("app1 down + reload", () => reload(true, false), { served: ["v1"] });
        await steps.step("app1 restarted as v2", () => a.restart("v2"), { served: ["v1"] });
        await steps.step("swap: app1 up, app2 down + reload", () => reload(false, true), { served: ["v2"] });
        await steps.step("app2 restarted as v2", () => b.restart("v2"), { served: ["v2"] });
        await steps.step("both up + reload", () => reload(false, false), { served: ["v2"] });
        return steps.finish(blueGreen.name);
      }),
    ),
};

const copyKilled: Scenario = {
  name: "stable copy killed (SIGKILL), proxy_next_upstream",
  run: (runtime, seconds) =>
    withCopies(runtime, ["app1", "app2"], (a, b) =>
      withRouter(runtime, { stable: [a.address, b.address], proxy: FAILOVER_PROXY }, async (router) => {
        const steps = new Steps(router.url, seconds, 2);
        await steps.step("both up", async () => undefined, { served: ["app1", "app2"] });
        await steps.step("app1 killed", () => a.kill(), { served: ["app2"] });
        return steps.finish(copyKilled.name);
      }),
    ),
};

/** USR2 → WINCH, then QUIT the old master (done) or HUP it and QUIT the new one (rolled back). */
function binaryUpgrade(rollback: boolean): Scenario {
  const scenario: Scenario = {
    name: rollback ? "binary upgrade rolled back (HUP old, QUIT new)" : "binary upgrade (USR2, WINCH, QUIT)",
    run: (runtime, seconds) =>
      withRouter(runtime, { serverExtra: releaseHeader("v1") }, async (router) => {
        const steps = new Steps(router.url, seconds, 4, byRelease);
        await steps.step("v1 running", async () => undefined, { served: ["v1"] });
        // The new master reads the configuration on disk: that is how the new generation differs.
        router.nginx.writeConf(router.render(undefined, { serverExtra: releaseHeader("v2") }));
        let upgrade: BinaryUpgrade | undefined;
        await steps.step("USR2", async () => (upgrade = await BinaryUpgrade.begin(router.nginx.pidFile)), {
          served: [],
          mayServe: ["v1", "v2"],
        });
        await steps.step("WINCH old", () => upgrade!.retireOldWorkers(), { served: ["v2"] });
        if (rollback) await steps.step("HUP old, QUIT new", () => upgrade!.rollback(), { served: ["v1"] });
        else await steps.step("QUIT old", () => upgrade!.finish(), { served: ["v2"] });
        return steps.finish(scenario.name);
      }),
  };
  return scenario;
}

/**
 * The rules document through a store restart: the router keeps its revision while memcached is
 * down (no fall back to stable), and writes it back to the empty memcached that comes back.
 */
const memcachedRestart: Scenario = {
  name: "memcached restarted",
  run: (runtime, seconds) =>
    withRouter(runtime, { options: { cache_ttl_ms: CACHE_TTL_MS } }, async (router, memcached, flags) => {
      const steps = new Steps(router.url, seconds, 3);
      await steps.step("weight 50", () => weight(router, memcached, 50), { served: ["stable", "canary"] });
      const written = (await readRules(memcached.address))!.revision;
      await steps.step("memcached stopped", () => memcached.stop(), { served: ["stable", "canary"] });
      await steps.step(
        "memcached back empty, the revision written back",
        async () => {
          await memcached.startAgain();
          const deadline = Date.now() + CACHE_TTL_MS + 3000;
          while ((await flags.get(pointerKey(""))) === undefined) {
            if (Date.now() > deadline) throw new Error("the router never wrote its revision back");
            await sleep(20);
          }
          const back = (await readRules(memcached.address))?.revision;
          if (back !== written) throw new Error(`revision ${String(back)} written back, not ${written}`);
        },
        { served: ["stable", "canary"] },
      );
      return steps.finish(memcachedRestart.name);
    }),
};

export const SCENARIOS: Scenario[] = [
  weightRamp,
  reloads,
  blueGreen,
  copyKilled,
  binaryUpgrade(false),
  binaryUpgrade(true),
  memcachedRestart,
];

type Row = { runtime: string; result: ScenarioResult };

const COLUMNS: Column<Row>[] = [
  { title: "scenario", cell: (r) => r.result.name },
  { title: "runtime", cell: (r) => r.runtime },
  { title: "sent", numeric: true, cell: (r) => r.result.summary.sent },
  { title: "failed", numeric: true, cell: (r) => r.result.summary.failed },
  { title: "non-2xx", numeric: true, cell: (r) => r.result.summary.non2xx },
  { title: "resets", numeric: true, cell: (r) => r.result.summary.resets },
  { title: "p99 ms", numeric: true, cell: (r) => r.result.summary.p99Ms.toFixed(1) },
  { title: "max ms", numeric: true, cell: (r) => r.result.summary.maxMs.toFixed(1) },
];

/** The README's table: one row per scenario and runtime. */
export function renderReleaseTable(rows: Row[]): string {
  return markdownTable(COLUMNS, rows);
}
