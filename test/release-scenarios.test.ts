/**
 * Zero-downtime release under load, on the selected runtime: every scenario of
 * harness/release-scenarios.ts, briefly (npm run release-table runs them longer). The bar:
 * 0 failed, 0 non-2xx, and each step served the version it should (the scenario checks that).
 */
import { describe, expect, it } from "vitest";
import { SCENARIOS } from "../harness/release-scenarios.ts";
import { testRuntime } from "./support.ts";

/** Seconds of load per scenario: short in CI. */
const SECONDS = 3;

describe("zero-downtime release under load", () => {
  for (const scenario of SCENARIOS) {
    it(scenario.name, { timeout: 90_000 }, async () => {
      const result = await scenario.run(await testRuntime(), SECONDS);
      console.log(`${scenario.name}\n  ${result.steps.join("\n  ")}\n  ${JSON.stringify(result.summary)}`);
      // Enough traffic through every step to mean something.
      expect(result.summary.sent).toBeGreaterThan(300);
      expect(result.summary.failed, JSON.stringify(result.summary.errors)).toBe(0);
      expect(result.summary.non2xx).toBe(0);
    });
  }
});
