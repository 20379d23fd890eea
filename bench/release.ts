/**
 * npm run release-table [-- --runtime native|containers|both] [--seconds S]
 *
 * Runs every zero-downtime release scenario (harness/release-scenarios.ts) with S seconds of
 * load on each runtime and prints the README's table. Exits 1 when a scenario misses its bar
 * (a failed or non-2xx request) or a step served the wrong version.
 */
import { parseArgs } from "node:util";
import { CLIENTS, type ScenarioResult, SCENARIOS, renderTable } from "../harness/release-scenarios.ts";
import { type RuntimeName, createRuntime } from "../harness/runtime.ts";

const { values } = parseArgs({
  options: {
    runtime: { type: "string", default: "both" },
    seconds: { type: "string", default: "10" },
  },
});
const seconds = Number(values.seconds);
if (!(seconds > 0 && seconds <= 600)) throw new Error(`--seconds must be from 1 to 600: ${values.seconds}`);
if (!["native", "containers", "both"].includes(values.runtime!)) throw new Error(`--runtime must be native, containers or both: ${values.runtime}`);
const runtimes: RuntimeName[] = values.runtime === "both" ? ["native", "containers"] : [values.runtime as RuntimeName];

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
      if (result.summary.failed > 0 || result.summary.non2xx > 0) problems.push(`${name}: ${scenario.name}: ${JSON.stringify(result.summary.errors)}`);
    } catch (err) {
      problems.push(`${name}: ${scenario.name}: ${(err as Error).message}`);
    }
  }
}
console.log(`${seconds} s of load per scenario, ${CLIENTS} clients (distinct 127.101.0.x source addresses, keep-alive)\n`);
console.log(renderTable(rows));
if (problems.length > 0) {
  console.log(`\nmissed the bar:\n${problems.join("\n")}`);
  process.exit(1);
}
process.exit(0);
