/**
 * Percentiles from the routers' latency histograms, as Prometheus's histogram_quantile() takes
 * them: the bucket holding the rank, and a linear guess inside it (from its lower bound to its
 * upper). So a p99 is known to a bucket's width: a difference within one bucket cannot be told.
 */
import { type Histogram, LATENCY_LE } from "../../lua-src/gray/status.ts";

/** The q-quantile (0.99 for p99) in seconds; undefined without observations or without a histogram. */
export function quantile(h: Histogram | undefined, q: number, le: number[] = LATENCY_LE): number | undefined {
  if (h === undefined || h.count <= 0) return undefined;
  const rank = q * h.count;
  let below = 0;
  for (let i = 0; i < h.counts.length; i++) {
    const n = h.counts[i] ?? 0;
    if (n > 0 && below + n >= rank) {
      // Beyond the last bound (+Inf) nothing is known but that bound, as Prometheus answers.
      if (i >= le.length) return le[le.length - 1];
      const lower = i === 0 ? 0 : le[i - 1]!;
      return lower + (le[i]! - lower) * ((rank - below) / n);
    }
    below += n;
  }
  return le[le.length - 1];
}
