/**
 * Store chaos under load, briefly, on the selected runtime: every case of harness/chaos.ts
 * (npm run chaos-table runs them longer and prints the README's table). The bars: 0 failed and
 * 0 non-2xx, every answer within the timeout plus the margin, a client flagged in the rules
 * document canary throughout (the document is in memory), a client flagged by a seed key canary again
 * within 1 s of the store's recovery, error.log within the warning rate limit, store connections
 * within the pools, worker memory flat across the cases.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHAOS_CASES,
  ChaosBed,
  POOL_SIZE,
  RSS_GROWTH_BOUND_KIB,
  STORE_CONNECTIONS_BOUND,
  WORKERS,
  missedBars,
  runChaosCase,
} from "../harness/chaos.ts";
import { testRuntime } from "./support.ts";

/** Seconds of load per case: short in CI. */
const SECONDS = 3;

const dictSizes = [...new Set(CHAOS_CASES.map((c) => c.dictSize))];

for (const dictSize of dictSizes) {
  describe(`store chaos under load, lua_shared_dict ${dictSize ?? "10m"}`, () => {
    let bed: ChaosBed;
    let firstKib = 0;

    beforeAll(async () => {
      bed = await ChaosBed.start(await testRuntime(), dictSize);
      firstKib = bed.rssKib();
    });
    afterAll(() => bed?.stop());

    for (const chaos of CHAOS_CASES.filter((c) => c.dictSize === dictSize)) {
      it(chaos.name, { timeout: 60_000 }, async () => {
        const result = await runChaosCase(bed, chaos, SECONDS);
        console.log(
          `${chaos.name}: ${result.evidence}; document-flagged client not canary ${result.documentNotCanary}× of ${result.documentAnswers}; recovery ${result.recoveryMs?.toFixed(0)} ms; ${JSON.stringify(result.summary)}`,
        );
        // Enough traffic through the fault to mean something.
        expect(result.summary.sent).toBeGreaterThan(300);
        expect(missedBars(result)).toEqual([]);
      });
    }

    it(`keeps store connections within ${WORKERS} workers × (pool ${POOL_SIZE} + the rules check's 1) and worker memory flat (RssAnon of both workers grows < ${RSS_GROWTH_BOUND_KIB} KiB)`, () => {
      const growth = bed.rssKib() - firstKib;
      console.log(
        `workers' RssAnon: ${firstKib} → ${firstKib + growth} KiB; store connections open now: ${bed.proxy.connections}`,
      );
      expect(bed.proxy.connections).toBeLessThanOrEqual(STORE_CONNECTIONS_BOUND);
      expect(growth).toBeLessThan(RSS_GROWTH_BOUND_KIB);
    });
  });
}
