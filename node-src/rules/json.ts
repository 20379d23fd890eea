/**
 * The document as JSON, for people and tools: `gray export` prints it (the backup), `gray apply`
 * reads it back. Reading checks the whole file before anything is written and names the first
 * bad entry by its path in the file (e.g. `ips[3].ip`).
 */
import {
  BUCKETS,
  DEFAULT_CANARY,
  FORMAT,
  type RulesDocument,
  emptyDocument,
  type Targets,
  weightOf,
} from "../../lua-src/gray/document.ts";
import { formatAddress, formatCidr, parseAddress, parseCidr } from "../../lua-src/gray/ip.ts";
import { isUserId } from "../../lua-src/gray/rules.ts";
import {
  BUCKETS_PER_PERCENT,
  ENTRY_KINDS,
  type EntryKind,
  RulesEditError,
  checkCanaryName,
  countBuckets,
  cloneDocument,
  ensureCanary,
  entriesOf,
  percentToBuckets,
  replaceRules,
  setWeight,
} from "./edit.ts";

export interface TargetsJson {
  upstream: string | null;
  location: string | null;
}

export interface CanaryJson extends TargetsJson {
  /** Percent of the clients the buckets hold. */
  weight: number;
  /** [start, count] runs of buckets, in the order they were taken (lowering gives back from the end). */
  buckets: [number, number][];
}

/** The subject's field is named for its kind: ip, cidr or user. expires: Unix seconds, null for never. */
export type EntryJson<K extends string> = { [key in K]: string } & { canary: string; expires: number | null };

export interface RulesJson {
  format: number;
  revision: number;
  stable: TargetsJson;
  canaries: Record<string, CanaryJson>;
  ips: EntryJson<"ip">[];
  ranges: EntryJson<"cidr">[];
  users: EntryJson<"user">[];
}

const SUBJECT_FIELD: Record<EntryKind, "ip" | "cidr" | "user"> = { ip: "ip", range: "cidr", user: "user" };
const LIST_FIELD: Record<EntryKind, "ips" | "ranges" | "users"> = { ip: "ips", range: "ranges", user: "users" };

const targetsJson = (t: Targets): TargetsJson => ({ upstream: t.upstream ?? null, location: t.location ?? null });

function pairs(buckets: number[]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < buckets.length; i += 2) out.push([buckets[i]!, buckets[i + 1]!]);
  return out;
}

export function toJson(doc: RulesDocument): RulesJson {
  const canaries: Record<string, CanaryJson> = {};
  for (const name of doc.canaryNames) {
    const def = doc.canaries[name]!;
    canaries[name] = { weight: weightOf(def), buckets: pairs(def.buckets), ...targetsJson(def) };
  }
  const list = <K extends string>(kind: EntryKind, field: K): EntryJson<K>[] => {
    const { subjects, expires } = entriesOf(doc, kind);
    return Object.keys(subjects).map(
      (s) => ({ [field]: s, canary: subjects[s]!, expires: expires[s] ?? null }) as EntryJson<K>,
    );
  };
  return {
    format: FORMAT,
    revision: doc.revision,
    stable: targetsJson(doc.stable),
    canaries,
    ips: list("ip", "ip"),
    ranges: list("range", "cidr"),
    users: list("user", "user"),
  };
}

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function bad(path: string, why: string, value: unknown): RulesEditError {
  const shown = JSON.stringify(value) ?? String(value);
  return new RulesEditError(`${path}: ${why} (got ${shown.length > 60 ? shown.slice(0, 60) + "..." : shown})`);
}

function onlyKeys(raw: Raw, path: string, known: string[]): void {
  for (const key of Object.keys(raw))
    if (!known.includes(key)) throw bad(path, `unknown field ${JSON.stringify(key)}`, raw[key]);
}

/** A location or an upstream name as one field of a line: printable ASCII without spaces. */
function target(raw: Raw, path: string, field: "upstream" | "location"): string | undefined {
  const v = raw[field];
  if (v === undefined || v === null) return undefined;
  const ok =
    typeof v === "string" &&
    /^[\x21-\x7e]{1,255}$/.test(v) &&
    v !== "-" &&
    (field === "upstream" ? /^[A-Za-z0-9._-]+$/.test(v) : v.startsWith("@") || v.startsWith("/"));
  if (!ok)
    throw bad(
      `${path}.${field}`,
      field === "upstream" ? "an upstream {} block's name (letters, digits, . - _)" : "a location (@name or /path)",
      v,
    );
  return v;
}

function targets(raw: unknown, path: string): Targets {
  if (raw === undefined) return { upstream: undefined, location: undefined };
  if (!isObject(raw)) throw bad(path, "an object { upstream, location }", raw);
  onlyKeys(raw, path, ["upstream", "location"]);
  return { upstream: target(raw, path, "upstream"), location: target(raw, path, "location") };
}

function buckets(raw: unknown, path: string): number[] {
  if (!Array.isArray(raw)) throw bad(path, "a list of [start, count] pairs", raw);
  const out: number[] = [];
  raw.forEach((pair, i) => {
    const [start, count] = Array.isArray(pair) ? (pair as unknown[]) : [];
    const ok =
      Array.isArray(pair) &&
      pair.length === 2 &&
      Number.isInteger(start) &&
      Number.isInteger(count) &&
      (start as number) >= 0 &&
      (count as number) > 0 &&
      (start as number) + (count as number) <= BUCKETS;
    if (!ok) throw bad(`${path}[${i}]`, `a [start, count] pair within 0..${BUCKETS}`, pair);
    out.push(start as number, count as number);
  });
  return out;
}

interface CanarySpec extends Targets {
  name: string;
  path: string;
  buckets: number[] | undefined;
  weight: number | undefined;
}

function canarySpecs(raw: unknown): CanarySpec[] {
  if (raw === undefined) return [];
  if (!isObject(raw)) throw bad("canaries", "an object of name: { weight, buckets, upstream, location }", raw);
  return Object.entries(raw).map(([name, def]) => {
    const path = `canaries.${name}`;
    try {
      checkCanaryName(name);
    } catch (err) {
      throw bad(path, (err as Error).message, name);
    }
    if (!isObject(def)) throw bad(path, "an object { weight, buckets, upstream, location }", def);
    onlyKeys(def, path, ["weight", "buckets", "upstream", "location"]);
    const owned = def.buckets === undefined ? undefined : buckets(def.buckets, `${path}.buckets`);
    let weight: number | undefined;
    if (def.weight !== undefined) {
      if (typeof def.weight !== "number") throw bad(`${path}.weight`, "a percentage from 0 to 100", def.weight);
      try {
        percentToBuckets(def.weight);
      } catch (err) {
        throw bad(`${path}.weight`, (err as Error).message, def.weight);
      }
      weight = def.weight;
    }
    if (owned === undefined && weight === undefined) throw bad(path, "needs a weight (or buckets)", def);
    const held = owned === undefined ? undefined : countBuckets(owned) / BUCKETS_PER_PERCENT;
    if (held !== undefined && weight !== undefined && held !== weight)
      throw bad(`${path}.weight`, `does not match its buckets (${held} %)`, weight);
    return { name, path, buckets: owned, weight, ...targets({ upstream: def.upstream, location: def.location }, path) };
  });
}

/** The subject as the router matches it (nginx's text for an address), or undefined when it is not one. */
function canonical(kind: EntryKind, subject: string): string | undefined {
  if (kind === "ip") {
    const addr = parseAddress(subject);
    return addr === undefined ? undefined : formatAddress(addr);
  }
  if (kind === "range") {
    const cidr = subject.includes("/") ? parseCidr(subject) : undefined;
    return cidr === undefined ? undefined : formatCidr(cidr);
  }
  return isUserId(subject) ? subject : undefined;
}

const SUBJECT_WHAT: Record<EntryKind, string> = {
  ip: "an IPv4 or IPv6 address",
  range: "a CIDR (address/bits)",
  user: "a user id (1-64 letters, digits or - . _ ~ @ + = :)",
};

/** Every entry of one kind, checked; subjects normalised, a subject twice refused. */
function entries(raw: unknown, kind: EntryKind, target: RulesDocument): void {
  const list = LIST_FIELD[kind];
  const field = SUBJECT_FIELD[kind];
  if (raw === undefined) return;
  if (!Array.isArray(raw)) throw bad(list, `a list of { ${field}, canary, expires }`, raw);
  const { subjects, expires } = entriesOf(target, kind);
  raw.forEach((entry: unknown, i) => {
    const path = `${list}[${i}]`;
    if (!isObject(entry)) throw bad(path, `an object { ${field}, canary, expires }`, entry);
    onlyKeys(entry, path, [field, "canary", "expires"]);
    const subject = typeof entry[field] === "string" ? canonical(kind, entry[field]) : undefined;
    if (subject === undefined) throw bad(`${path}.${field}`, `not ${SUBJECT_WHAT[kind]}`, entry[field]);
    if (subjects[subject] !== undefined) throw bad(`${path}.${field}`, "listed twice", subject);
    const canary = entry.canary ?? DEFAULT_CANARY;
    if (typeof canary !== "string") throw bad(`${path}.canary`, "a canary name", canary);
    try {
      ensureCanary(target, canary);
    } catch (err) {
      throw bad(`${path}.canary`, (err as Error).message, canary);
    }
    const until = entry.expires ?? 0;
    if (!Number.isInteger(until) || (until as number) < 0)
      throw bad(`${path}.expires`, "Unix seconds, or null for never", entry.expires);
    subjects[subject] = canary;
    if ((until as number) > 0) expires[subject] = until as number;
  });
}

/**
 * The document `apply` would write: the file's rules on top of `current` (whose history is kept).
 * A canary given by weight keeps the buckets it owns now as far as it can (lowering gives back its
 * newest, raising takes free ones), so applying an export elsewhere or later moves no client.
 */
export function fromJson(raw: unknown, current: RulesDocument): RulesDocument {
  if (!isObject(raw)) throw bad("the file", "a JSON object as gray export prints it", raw);
  onlyKeys(raw, "the file", ["format", "revision", "stable", "canaries", "ips", "ranges", "users"]);
  if (raw.format !== FORMAT) throw bad("format", `must be ${FORMAT}`, raw.format);
  const specs = canarySpecs(raw.canaries);
  const doc = cloneDocument(current);
  replaceRules(doc, emptyDocument());
  doc.stable = targets(raw.stable, "stable");
  // Explicit buckets first; then the others start from what they own now, minus what those claim.
  const claimed = new Uint8Array(BUCKETS);
  for (const spec of specs) {
    const def = ensureCanary(doc, spec.name);
    def.upstream = spec.upstream;
    def.location = spec.location;
    if (spec.buckets === undefined) continue;
    for (let i = 0; i < spec.buckets.length; i += 2)
      for (let b = spec.buckets[i]!; b < spec.buckets[i]! + spec.buckets[i + 1]!; b++) {
        if (claimed[b] === 1) throw bad(`${spec.path}.buckets`, `bucket ${b} is owned twice`, spec.buckets);
        claimed[b] = 1;
      }
    def.buckets = [...spec.buckets];
  }
  for (const spec of specs) {
    if (spec.buckets !== undefined) continue;
    const before = current.canaries[spec.name]?.buckets ?? [];
    const kept: number[] = [];
    for (let i = 0; i < before.length; i += 2)
      for (let b = before[i]!; b < before[i]! + before[i + 1]!; b++) {
        if (claimed[b] === 1) continue;
        claimed[b] = 1;
        if (kept.length > 0 && kept[kept.length - 2]! + kept[kept.length - 1]! === b) kept[kept.length - 1]!++;
        else kept.push(b, 1);
      }
    doc.canaries[spec.name]!.buckets = kept;
  }
  const byWeight = specs.filter((s) => s.buckets === undefined);
  const lowering = (s: CanarySpec) => percentToBuckets(s.weight!) <= countBuckets(doc.canaries[s.name]!.buckets);
  for (const spec of [...byWeight.filter(lowering), ...byWeight.filter((s) => !lowering(s))]) {
    try {
      setWeight(doc, spec.name, spec.weight!);
    } catch (err) {
      throw bad(`${spec.path}.weight`, (err as Error).message, spec.weight);
    }
  }
  for (const kind of ENTRY_KINDS) entries(raw[LIST_FIELD[kind]], kind, doc);
  return doc;
}
