/**
 * npm run release-table [-- --runtime native|containers|both] [--seconds S]
 *
 * Runs every zero-downtime release scenario (harness/release-scenarios.ts) with S seconds of
 * load on each runtime and prints the README's table. Exits 1 when a scenario misses its bar
 * (a failed or non-2xx request) or a step served the wrong version.
 */
import { CLIENTS, type ScenarioResult, SCENARIOS, renderReleaseTable } from "../harness/release-scenarios.ts";
import { createRuntime } from "../harness/pick-runtime.ts";
import { tableArgs } from "./table-args.ts";

const { seconds, runtimes } = tableArgs(10);

const rows: { runtime: string; result: ScenarioResult }[] = [];
const problems: string[] = [];
for (const name of runtimes) {
  const runtime = await createRuntime(name);
  for (const scenario of SCENARIOS) {
    process.stderr.write(`${name}: ${scenario.name} ...\n`);
    try {
      const result = await scenario.run(runtime, seconds);
      rows.push({ runtime: name, result });
      process.stderr.write(`  ${result.steps.join("\n  ")}\n`);
      if (result.summary.failed > 0 || result.summary.non2xx > 0)
        problems.push(`${name}: ${scenario.name}: ${JSON.stringify(result.summary.errors)}`);
    } catch (err) {
      problems.push(`${name}: ${scenario.name}: ${(err as Error).message}`);
    }
  }
}
console.log(
  `${seconds} s of load per scenario, ${CLIENTS} clients (distinct 127.101.0.x source addresses, keep-alive)\n`,
);
console.log(renderReleaseTable(rows));
if (problems.length > 0) {
  console.log(`\nmissed the bar:\n${problems.join("\n")}`);
  process.exit(1);
}
process.exit(0);
