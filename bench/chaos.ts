/**
 * npm run chaos-table [-- --runtime native|containers|both] [--seconds S]
 *
 * Runs every store-chaos case (harness/chaos.ts) with about S seconds of load on each runtime
 * (half of it with the store broken) and prints the README's "What it survives" table. Exits 1
 * when a case misses a bar or worker memory grew past its bound.
 */
import {
  CHAOS_CASES,
  type CaseResult,
  LATENCY_BOUND_MS,
  LATENCY_MARGIN_MS,
  RECOVERY_BOUND_MS,
  RSS_GROWTH_BOUND_KIB,
  TIMEOUT_MS,
  missedBars,
  renderChaosTable,
  runChaos,
} from "../harness/chaos.ts";
import { createRuntime } from "../harness/pick-runtime.ts";
import { tableArgs } from "./table-args.ts";

const { seconds, runtimes } = tableArgs(60);

const rows: { runtime: string; result: CaseResult }[] = [];
const memory: string[] = [];
const problems: string[] = [];
for (const name of runtimes) {
  const runtime = await createRuntime(name);
  try {
    const run = await runChaos(runtime, seconds, (result) => {
      rows.push({ runtime: name, result });
      process.stderr.write(`${name}: ${result.name}: ${result.evidence}; ${JSON.stringify(result.summary)}\n`);
      for (const problem of missedBars(result)) problems.push(`${name}: ${result.name}: ${problem}`);
    });
    for (const m of run.memory) {
      const growth = m.lastKib - m.firstKib;
      memory.push(
        `${name}, lua_shared_dict ${m.dict}: ${m.firstKib} → ${m.lastKib} KiB (${growth >= 0 ? "+" : ""}${growth})`,
      );
      if (growth > RSS_GROWTH_BOUND_KIB)
        problems.push(`${name}: worker RssAnon grew ${growth} KiB > ${RSS_GROWTH_BOUND_KIB}`);
    }
  } catch (err) {
    problems.push(`${name}: ${(err as Error).message}`);
  }
}
console.log(
  `about ${seconds} s of load per case (half of it faulted), ${CHAOS_CASES.length} cases, 32 clients on distinct 127.103.0.x addresses plus a flagged probe; ` +
    `bars: 0 failed, every answer < ${LATENCY_BOUND_MS} ms (timeout ${TIMEOUT_MS} + ${LATENCY_MARGIN_MS}), recovery < ${RECOVERY_BOUND_MS} ms\n`,
);
console.log(renderChaosTable(rows));
console.log(`\nworkers' RssAnon (2 workers, summed) after warm-up → after the last case:\n${memory.join("\n")}`);
if (problems.length > 0) {
  console.log(`\nmissed the bar:\n${problems.join("\n")}`);
  process.exit(1);
}
process.exit(0);
