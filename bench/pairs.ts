/**
 * The fast path's contract, measured in pairs: each drop-in pattern's router against its floor in
 * short windows, back to back in A B B A order, many times over. Host noise on a shared machine
 * (other tenants, the clock) moves by the second; a pair spans four windows, so what moves slowly
 * falls on router and floor alike and cancels in their difference, and the A B B A order cancels a
 * steady drift within the pair. The figure is the median of the pairs' differences in worker CPU per
 * request, with a 95 % interval for that median from the order statistics: when the interval lies
 * on one side of the bar, the run has settled it.
 */
import { fmt } from "./compare.ts";
import { type Bed, type BenchTarget, type Sample, measureOnce, median, startVariant, table } from "./measure.ts";
import { VARIANTS } from "./variants.ts";

/** What a cached router may add to its pattern's floor, in worker CPU µs per request. */
export const FLOOR_MARGIN_US = 2;

export interface PairPlan {
  pairs: number;
  seconds: number;
  connections: number;
}

export interface PairRow {
  pattern: string;
  router: string;
  floor: string;
  /** µs of worker CPU per request, router minus floor: the median of the pairs and its 95 % interval. */
  median: number;
  low: number;
  high: number;
  /** The pairs' least and greatest difference. */
  min: number;
  max: number;
  routerCpuUs: number;
  floorCpuUs: number;
}

const PATTERNS = [
  { pattern: "exec (route())", router: "cached", floor: "floor" },
  { pattern: "variable (route_upstream())", router: "cached-var", floor: "floor-var" },
];

/**
 * A 95 % interval for the median of n sorted values: the values of ranks n/2 ∓ 0.98·√n, rounded
 * outwards (the binomial's normal approximation; for 30 pairs, the 9th and the 22nd of 30).
 */
export function medianInterval(sorted: number[]): { low: number; high: number } {
  const n = sorted.length;
  const reach = 0.98 * Math.sqrt(n);
  const low = Math.max(1, Math.floor(n / 2 - reach));
  const high = Math.min(n, Math.ceil(1 + n / 2 + reach));
  return { low: sorted[low - 1]!, high: sorted[high - 1]! };
}

export async function floorPairs(bed: Bed, plan: PairPlan): Promise<{ rows: PairRow[]; table: string }> {
  const names = PATTERNS.flatMap((p) => [p.floor, p.router]);
  const targets: BenchTarget[] = [];
  try {
    for (const name of names) {
      const variant = VARIANTS.find((v) => v.name === name)!;
      targets.push({ name, nginx: await startVariant(bed, variant.http) });
    }
    const byName = (name: string) => targets.find((t) => t.name === name)!;
    const run = (name: string) => measureOnce(byName(name), plan.seconds, plan.connections);
    // Warm-up: pools, caches and LuaJIT traces.
    for (const name of names) await measureOnce(byName(name), 1, plan.connections);
    const diffs = new Map<string, number[]>(PATTERNS.map((p) => [p.router, []]));
    const cpu = new Map<string, number[]>(names.map((n) => [n, []]));
    for (let i = 0; i < plan.pairs; i++) {
      for (const p of PATTERNS) {
        // A B B A, with A the floor on even pairs and the router on odd ones.
        const [a, b] = i % 2 === 0 ? [p.floor, p.router] : [p.router, p.floor];
        const got: Record<string, Sample[]> = { [a]: [], [b]: [] };
        for (const name of [a, b, b, a]) got[name]!.push(await run(name));
        const mean = (name: string) => (got[name]![0]!.cpuUs + got[name]![1]!.cpuUs) / 2;
        const diff = mean(p.router) - mean(p.floor);
        diffs.get(p.router)!.push(diff);
        cpu.get(p.router)!.push(mean(p.router));
        cpu.get(p.floor)!.push(mean(p.floor));
        process.stderr.write(
          `pair ${i + 1}/${plan.pairs} ${p.router.padEnd(10)} over ${p.floor.padEnd(9)} ${fmt(diff)} µs CPU/request\n`,
        );
      }
    }
    const rows = PATTERNS.map((p) => {
      const d = [...diffs.get(p.router)!].sort((x, y) => x - y);
      return {
        ...p,
        median: median(d),
        ...medianInterval(d),
        min: d[0]!,
        max: d.at(-1)!,
        routerCpuUs: median(cpu.get(p.router)!),
        floorCpuUs: median(cpu.get(p.floor)!),
      };
    });
    return {
      rows,
      table: table(
        ["pattern", "floor µs/req", "router µs/req", "router − floor (median)", "95 % interval", "pairs min..max"],
        rows.map((r) => [
          r.pattern,
          fmt(r.floorCpuUs, 1),
          fmt(r.routerCpuUs, 1),
          fmt(r.median),
          `${fmt(r.low)}..${fmt(r.high)}`,
          `${fmt(r.min)}..${fmt(r.max)}`,
        ]),
      ),
    };
  } finally {
    await Promise.all(targets.map((t) => t.nginx.stop()));
  }
}
