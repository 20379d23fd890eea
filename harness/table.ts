/** The README's result tables, rendered as Markdown from rows of run results. */

export interface Column<Row> {
  title: string;
  /** Numbers sit right-aligned. */
  numeric?: boolean;
  cell(row: Row): string | number;
}

export function markdownTable<Row>(columns: Column<Row>[], rows: Row[]): string {
  const lines = [
    `| ${columns.map((c) => c.title).join(" | ")} |`,
    `|${columns.map((c) => (c.numeric ? "---:" : "---")).join("|")}|`,
  ];
  for (const row of rows) lines.push(`| ${columns.map((c) => String(c.cell(row))).join(" | ")} |`);
  return lines.join("\n");
}
