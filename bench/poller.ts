/**
 * What watching a router costs it: the status page (or `gray status`, or a Prometheus scrape) asks
 * /gray/status for JSON once a second. The router by variable (gray.conf's drop-in, ip_keys =
 * false, a rules document with a weight, a running release in memcached) under wrk, round by round
 * with no poller, one poller and ten (ten open pages), interleaved as measure.ts does; and, apart,
 * the worker CPU one status answer takes with no traffic, which is what a poller costs per second.
 */
import { request } from "undici";
import type { FlagStore } from "../harness/flags.ts";
import type { MemcachedServer } from "../harness/memcached.ts";
import { editDocument } from "../harness/rules.ts";
import { cpuSeconds, workersOf } from "../harness/proc.ts";
import { releaseKey } from "../lua-src/gray/status.ts";
import { setWeight } from "../node-src/rules/edit.ts";
import {
  type Bed,
  type BenchTarget,
  type RoundPlan,
  type Sample,
  interleave,
  median,
  startVariant,
} from "./measure.ts";
import { RULES_LOADED_MS, router } from "./variants.ts";

export interface PollerRow {
  name: string;
  pollers: number;
  /** Medians over the rounds, and the rounds' spread. */
  rps: number;
  rpsMin: number;
  rpsMax: number;
  cpuUs: number;
  /** Worker CPU per request over the no-poller run of the same round (median of the paired differences). */
  cpuOverNoneUs: number;
  cpuOverNoneMin: number;
  cpuOverNoneMax: number;
  /** Status answers the pollers got over all rounds, and the median time one took under the load. */
  answers: number;
  answerMs: number;
  failed: number;
}

export interface PollerCost {
  rows: PollerRow[];
  /** Worker CPU per /gray/status JSON answer, no other traffic (µs). */
  statusAnswerUs: number;
  /** The same for the page itself (HTML, about 29 KB). */
  pageAnswerUs: number;
  /** The same for a routed request (GET /, proxied to stable), for scale: one at a time costs more than under wrk. */
  routedAnswerUs: number;
  statusBytes: number;
}

/** A poller: one GET of the status JSON a second, as the page sends it, until stopped. */
class Poller {
  private timer: NodeJS.Timeout | undefined;
  readonly times: number[] = [];
  failed = 0;

  constructor(private readonly url: string) {}

  start(offsetMs: number): void {
    const tick = () => {
      const started = performance.now();
      request(this.url, { headers: { accept: "application/json" }, headersTimeout: 5000, bodyTimeout: 5000 })
        .then(async (res) => {
          await res.body.text();
          if (res.statusCode !== 200) this.failed++;
          else this.times.push(performance.now() - started);
        })
        .catch(() => this.failed++);
    };
    this.timer = setTimeout(() => {
      tick();
      this.timer = setInterval(tick, 1000);
    }, offsetMs);
  }

  stop(): void {
    clearTimeout(this.timer);
    clearInterval(this.timer);
  }
}

/** Worker CPU µs per answer of `url`, over `n` sequential requests with nothing else going on. */
async function answerCost(target: BenchTarget, url: string, accept: string, n: number): Promise<number> {
  const pids = await workersOf(target.nginx, target.workers);
  for (let i = 0; i < 50; i++) await (await request(url, { headers: { accept } })).body.text();
  const before = cpuSeconds(pids);
  for (let i = 0; i < n; i++) await (await request(url, { headers: { accept } })).body.text();
  return ((cpuSeconds(pids) - before) * 1e6) / n;
}

export async function pollerCost(
  bed: Bed,
  load: RoundPlan,
  memcached: MemcachedServer,
  flags: FlagStore,
): Promise<PollerCost> {
  const nginx = await startVariant(bed, router({ ip_keys: false }, "", true, "upstream"));
  try {
    await editDocument(memcached.address, "", "bench poller", (doc) => setWeight(doc, "canary", 10));
    // A release running, as the CLI writes it: the answers carry it, as they do while one runs.
    const release = {
      format: 1,
      id: "bench",
      owner: "bench@host",
      pid: 1,
      host: "host",
      canary: "canary",
      steps: [1, 10, 50, 100],
      from_weight: 0,
      step: 2,
      weight: 10,
      state: "running",
      control: "run",
      started_at: Date.now(),
      lease_until: Date.now() + 3600_000,
      routers: [`${nginx.url}/gray/status`],
      samples: null,
      verdicts: [{ step: 1, weight: 1, verdict: "pass", reasons: [], at: Date.now() }],
    };
    await flags.set(releaseKey(""), JSON.stringify(release));
    await new Promise((r) => setTimeout(r, RULES_LOADED_MS));
    const statusUrl = `${nginx.url}/gray/status?format=json`;
    const statusBytes = (await (await request(statusUrl)).body.text()).length;
    const base: BenchTarget = { name: "no poller", nginx };
    const statusAnswerUs = await answerCost(base, statusUrl, "application/json", 3000);
    const pageAnswerUs = await answerCost(base, `${nginx.url}/gray/status`, "text/html", 1000);
    const routedAnswerUs = await answerCost(base, `${nginx.url}/`, "*/*", 3000);

    const plans = [
      { name: "no poller", pollers: 0 },
      { name: "1 poller (1/s)", pollers: 1 },
      { name: "10 pollers (10/s)", pollers: 10 },
    ];
    const targets: BenchTarget[] = plans.map((p) => ({ name: p.name, nginx }));
    const answered = new Map<string, Poller[]>(plans.map((p) => [p.name, []]));
    // Warm-up: pools and LuaJIT traces.
    await interleave([targets[0]!], { ...load, rounds: 1, seconds: 1 });
    const samples = await interleave(targets, load, async (t, run) => {
      const n = plans.find((p) => p.name === t.name)!.pollers;
      const pollers = Array.from({ length: n }, () => new Poller(statusUrl));
      // Spread over the second, as independent pages would be.
      pollers.forEach((p, i) => p.start((i * 1000) / Math.max(n, 1)));
      try {
        return await run();
      } finally {
        for (const p of pollers) p.stop();
        answered.get(t.name)!.push(...pollers);
      }
    });
    const none = samples.get("no poller")!;
    const rows = plans.map((p): PollerRow => {
      const s: Sample[] = samples.get(p.name)!;
      const over = s.map((x, i) => x.cpuUs - none[i]!.cpuUs);
      const pollers = answered.get(p.name)!;
      const times = pollers.flatMap((q) => q.times);
      return {
        name: p.name,
        pollers: p.pollers,
        rps: median(s.map((x) => x.rps)),
        rpsMin: Math.min(...s.map((x) => x.rps)),
        rpsMax: Math.max(...s.map((x) => x.rps)),
        cpuUs: median(s.map((x) => x.cpuUs)),
        cpuOverNoneUs: median(over),
        cpuOverNoneMin: Math.min(...over),
        cpuOverNoneMax: Math.max(...over),
        answers: times.length,
        answerMs: times.length === 0 ? 0 : median(times),
        failed: pollers.reduce((n, q) => n + q.failed, 0),
      };
    });
    return { rows, statusAnswerUs, pageAnswerUs, routedAnswerUs, statusBytes };
  } finally {
    await nginx.stop();
  }
}
