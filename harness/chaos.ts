/**
 * Store chaos under load: each fault is done to the router's store while the load driver runs,
 * then undone. One router (two workers) lives through every memcached fault in turn, so its
 * memory and its store connections are watched across all of them; the shared-dict fault needs
 * a dict of its own size and gets a second router. test/chaos.test.ts runs each case briefly
 * and checks the bars; bench/chaos.ts runs them longer and prints the README's table.
 *
 * The public names, from harness/chaos/: bed.ts (what the cases act on), cases.ts (the faults),
 * run.ts (running a case and its bars), table.ts (the README's table). Callers import from here,
 * so the folder can be rearranged without touching them.
 */
export { ChaosBed, POOL_SIZE, STORE_CONNECTIONS_BOUND, TIMEOUT_MS, WORKERS } from "./chaos/bed.ts";
export { CHAOS_CASES } from "./chaos/cases.ts";
export {
  type CaseResult,
  LATENCY_BOUND_MS,
  LATENCY_MARGIN_MS,
  RECOVERY_BOUND_MS,
  RSS_GROWTH_BOUND_KIB,
  missedBars,
  runChaos,
  runChaosCase,
} from "./chaos/run.ts";
export { renderChaosTable } from "./chaos/table.ts";
