/** The live range list (`<prefix>gray:ranges`) as `gray add` and `gray remove` edit it. */
import { formatCidr } from "../../lua-src/gray/ip.ts";
import { parseRangeList } from "../../lua-src/gray/ranges.ts";
import type { AdminStore } from "./store.ts";

export async function readRanges(store: AdminStore, key: string): Promise<string> {
  return (await store.get(key)) ?? "";
}

/** The range list with some CIDRs added or removed; entries already there (even unreadable ones) are kept as written. */
export async function editRanges(store: AdminStore, key: string, add: string[], remove: string[]): Promise<string[]> {
  const { cidrs, invalid } = parseRangeList(await readRanges(store, key));
  const kept = cidrs.map(formatCidr).filter((e) => !remove.includes(e));
  for (const a of add) if (!kept.includes(a)) kept.push(a);
  const all = [...kept, ...invalid];
  if (all.length === 0) await store.delete(key);
  else await store.set(key, all.join(" "));
  return kept;
}
