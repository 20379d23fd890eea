/** The README's "What it survives" table: one row per case and runtime. */
import { type Column, markdownTable } from "../table.ts";
import type { CaseResult } from "./run.ts";

type ChaosRow = { runtime: string; result: CaseResult };

const COLUMNS: Column<ChaosRow>[] = [
  { title: "case", cell: (r) => r.result.name },
  { title: "runtime", cell: (r) => r.runtime },
  { title: "sent", numeric: true, cell: (r) => r.result.summary.sent },
  { title: "failed", numeric: true, cell: (r) => r.result.summary.failed },
  { title: "non-2xx", numeric: true, cell: (r) => r.result.summary.non2xx },
  { title: "p99 ms", numeric: true, cell: (r) => r.result.summary.p99Ms.toFixed(1) },
  { title: "max ms", numeric: true, cell: (r) => r.result.summary.maxMs.toFixed(1) },
  { title: "recovery ms", numeric: true, cell: (r) => r.result.recoveryMs?.toFixed(0) ?? "none" },
  { title: "log lines", numeric: true, cell: (r) => `${r.result.logLines.length} (≤ ${r.result.logBound})` },
  { title: "store conns max", numeric: true, cell: (r) => r.result.maxStoreConnections },
  {
    title: "RssAnon KiB before → after",
    numeric: true,
    cell: (r) => `${r.result.rssBeforeKib} → ${r.result.rssAfterKib}`,
  },
];

export function renderChaosTable(rows: ChaosRow[]): string {
  return markdownTable(COLUMNS, rows);
}
