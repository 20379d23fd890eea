/**
 * Canary ranges: CIDR lists merged into sorted, disjoint intervals per address family, so a
 * lookup is a binary search (log n), not a scan, however many ranges an operator adds.
 * Pure: the router (Lua) and the CLI (JavaScript) run the same code.
 */
import { type Address, type Cidr, parseCidr } from "./ip.ts";

interface Interval {
  lo: Address;
  hi: Address;
}

export interface RangeSet {
  /** Disjoint, sorted by lo; one list per family (2 or 8 groups). */
  v4: Interval[];
  v6: Interval[];
  /** How many CIDRs went in (before merging), for status and `gray list`. */
  size: number;
}

export interface ParsedRanges {
  cidrs: Cidr[];
  /** Entries that are not an address or CIDR, as written. */
  invalid: string[];
}

function compare(a: Address, b: Address): number {
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

/** The last address of the CIDR: host bits all ones. */
function lastAddress(cidr: Cidr): Address {
  const hi: Address = [];
  for (let i = 0; i < cidr.addr.length; i++) {
    const keep = Math.min(16, Math.max(0, cidr.bits - i * 16));
    hi[i] = cidr.addr[i]! + 2 ** (16 - keep) - 1;
  }
  return hi;
}

/** The successor of an address, or undefined past the last one; for merging touching intervals. */
function next(a: Address): Address | undefined {
  const out = [...a];
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i]! < 0xffff) {
      out[i] = out[i]! + 1;
      return out;
    }
    out[i] = 0;
  }
  return undefined;
}

function merge(intervals: Interval[]): Interval[] {
  intervals.sort((a, b) => compare(a.lo, b.lo));
  const out: Interval[] = [];
  for (const it of intervals) {
    const last = out[out.length - 1];
    const after = last === undefined ? undefined : next(last.hi);
    if (last !== undefined && (after === undefined || compare(it.lo, after) <= 0)) {
      if (compare(it.hi, last.hi) > 0) last.hi = it.hi;
    } else {
      out.push({ lo: it.lo, hi: it.hi });
    }
  }
  return out;
}

export function buildRanges(cidrs: Cidr[]): RangeSet {
  const v4: Interval[] = [];
  const v6: Interval[] = [];
  for (const cidr of cidrs) {
    (cidr.addr.length === 2 ? v4 : v6).push({ lo: cidr.addr, hi: lastAddress(cidr) });
  }
  return { v4: merge(v4), v6: merge(v6), size: cidrs.length };
}

function isSeparator(c: number): boolean {
  return c === 32 || c === 44 || c === 9 || c === 10 || c === 13;
}

/** The text of `<key_prefix>gray:ranges`: CIDRs separated by spaces, commas or newlines. */
export function parseRangeList(text: string): ParsedRanges {
  const cidrs: Cidr[] = [];
  const invalid: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && isSeparator(text.charCodeAt(i))) i++;
    const start = i;
    while (i < text.length && !isSeparator(text.charCodeAt(i))) i++;
    if (i > start) {
      const entry = text.substring(start, i);
      const cidr = parseCidr(entry);
      if (cidr === undefined) invalid.push(entry);
      else cidrs.push(cidr);
    }
  }
  return { cidrs, invalid };
}

/** Matches as nginx's ngx_cidr_match does: ::ffff:a.b.c.d is looked up among the IPv4 ranges. */
export function rangesContain(set: RangeSet, addr: Address): boolean {
  let a = addr;
  let list = set.v4;
  if (a.length === 8) {
    if (a[0] === 0 && a[1] === 0 && a[2] === 0 && a[3] === 0 && a[4] === 0 && a[5] === 0xffff) a = [a[6]!, a[7]!];
    else list = set.v6;
  }
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2);
    const it = list[mid]!;
    if (compare(a, it.lo) < 0) hi = mid - 1;
    else if (compare(a, it.hi) > 0) lo = mid + 1;
    else return true;
  }
  return false;
}
