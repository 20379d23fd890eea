/**
 * The rules document on the Node side, without servers: the text it writes reads back the same
 * through the router's own parser, cut into chunks of whole lines; weights are buckets that stay
 * with their clients; JSON export and apply agree; a bad file or weight is refused by name.
 */
import { describe, expect, it } from "vitest";
import {
  BUCKETS,
  CHUNK_BYTES,
  HISTORY_KEEP,
  type RulesDocument,
  bucketOwner,
  buildView,
  emptyDocument,
  formatPointer,
  parseDocument,
  parsePointer,
} from "../lua-src/gray/document.ts";
import { diffDocuments } from "../node-src/rules/diff.ts";
import {
  RulesEditError,
  cloneDocument,
  flag,
  nextRevision,
  pruneExpired,
  setWeight,
  unflag,
  weights,
} from "../node-src/rules/edit.ts";
import { crc32Text, documentLines, encodeDocument, printable, splitChunks } from "../node-src/rules/format.ts";
import { fromJson, toJson } from "../node-src/rules/json.ts";
import { strictCheck } from "../node-src/rules/revisions.ts";
import { hashText } from "../node-src/cli/explain.ts";

const who = { at: 1_700_000_000, by: "tess@host", change: "test" };

/** Writes and reads back as a reader of memcached would: chunks joined, CRCs checked, parsed strictly. */
function roundTrip(doc: RulesDocument): RulesDocument {
  const { pointer, chunks } = encodeDocument(doc);
  expect(parsePointer(formatPointer(pointer))).toEqual(pointer);
  chunks.forEach((c, i) => expect(crc32Text(c)).toBe(pointer.crcs[i]));
  const text = chunks.join("");
  expect(text.length).toBe(pointer.bytes);
  const back = parseDocument(text, strictCheck);
  if (typeof back === "string") throw new Error(back);
  return back;
}

function sample(): RulesDocument {
  const doc = emptyDocument();
  flag(doc, "ip", "203.0.113.7", "canary", 0);
  flag(doc, "ip", "2001:db8::1", "beta", 1_900_000_000);
  flag(doc, "range", "10.0.0.0/8", "canary", 0);
  flag(doc, "range", "2001:db8:a::/48", "beta", 1_900_000_000);
  flag(doc, "user", "alice", "beta", 0);
  flag(doc, "user", "42", "canary", 1_900_000_001);
  setWeight(doc, "canary", 12.5);
  setWeight(doc, "beta", 0.001);
  doc.stable = { upstream: "v2", location: "@v2" };
  doc.canaries.beta!.upstream = "beta_up";
  nextRevision(doc, 1_700_000_000_000, undefined, who);
  return doc;
}

describe("the document text", () => {
  it("reads back through the router's parser as written", () => {
    const doc = sample();
    const back = roundTrip(doc);
    expect({ ...back, entries: 0 }).toEqual({ ...doc, entries: 0 });
    expect(back.entries).toBe(6);
    expect(back.canaryNames).toEqual(["canary", "beta"]);
    expect(weights(back)).toEqual({ canary: 12.5, beta: 0.001 });
  });

  it("keeps the last HISTORY_KEEP revisions, each older one with its pointer, and drops the rest", () => {
    let doc = sample();
    let pointer = encodeDocument(doc).pointer;
    const dropped = [];
    for (let i = 1; i <= 25; i++) {
      doc = cloneDocument(doc);
      flag(doc, "ip", `192.0.2.${i}`, "canary", 0);
      dropped.push(...nextRevision(doc, doc.revision + 1, pointer, { ...who, change: `add 192.0.2.${i}` }));
      pointer = encodeDocument(doc).pointer;
    }
    const back = roundTrip(doc);
    expect(back.history).toHaveLength(HISTORY_KEEP);
    expect(back.history[0]).toMatchObject({ revision: doc.revision, pointer: undefined, change: "add 192.0.2.25" });
    expect(
      back.history.slice(1).every((h) => h.pointer !== undefined && parsePointer(h.pointer)!.revision === h.revision),
    ).toBe(true);
    expect(dropped.map((h) => h.revision)).toEqual([
      1_700_000_000_000,
      ...[1, 2, 3, 4, 5].map((i) => 1_700_000_000_000 + i),
    ]);
  });

  it("writes who and what as printable ASCII whatever they hold", () => {
    expect(printable("jösé@höst name", false, 100)).toBe("j_s_@h_st_name");
    expect(printable("add 1.2.3.4\n--canary é", true, 100)).toBe("add 1.2.3.4 --canary  ");
    expect(printable("x".repeat(500), true, 300)).toHaveLength(300);
    const doc = sample();
    nextRevision(doc, doc.revision + 1, encodeDocument(doc).pointer, { at: 1, by: "ü ser@h\tost", change: "née\r\nx" });
    expect(roundTrip(doc).history[0]).toMatchObject({ by: "__ser@h_ost", change: "n e  x" });
  });

  it("cuts 100,000 entries into chunks of whole lines, each within CHUNK_BYTES, and reads them back", () => {
    const doc = emptyDocument();
    for (let i = 0; i < 100_000; i++)
      flag(doc, "ip", `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, "canary", 0);
    setWeight(doc, "canary", 3);
    nextRevision(doc, 1_700_000_000_000, undefined, who);
    const { pointer, chunks } = encodeDocument(doc);
    expect(chunks.length).toBeGreaterThan(2);
    expect(pointer.crcs).toHaveLength(chunks.length);
    for (const c of chunks) {
      expect(c.length).toBeLessThanOrEqual(CHUNK_BYTES);
      expect(c.endsWith("\n")).toBe(true);
    }
    const back = roundTrip(doc);
    expect(back.entries).toBe(100_000);
    expect(Object.keys(back.ips)).toHaveLength(100_000);
    // A chunk lost from the middle is caught: the end line's count no longer matches (or the text ends early).
    expect(typeof parseDocument(chunks.filter((_, i) => i !== 1).join(""))).toBe("string");
  });

  it("splits at line boundaries, never inside a line, and refuses a line longer than a chunk", () => {
    expect(splitChunks(["aaa\n", "bb\n", "c\n"], 6)).toEqual(["aaa\n", "bb\nc\n"]);
    expect(() => splitChunks(["x".repeat(10)], 6)).toThrow(/does not fit/);
    expect(documentLines(emptyDocument())).toEqual(["gray-rules 1 0 0 0 0\n", "stable - -\n", "end 0\n"]);
  });
});

/** Every canary these tests name, as a router with all of them configured routes them. */
const ALL = ["canary", "a", "b"];

/** Which canary each of `clients` lands in by weight. */
function owners(doc: RulesDocument, clients: string[]): Map<string, string | undefined> {
  const view = buildView(doc, [], 0, ALL, 0);
  return new Map(clients.map((ip) => [ip, bucketOwner(view, hashText(ip) % BUCKETS)]));
}

const clients = Array.from({ length: 20_000 }, (_, i) => `172.16.${i >> 8}.${i & 255}`);

describe("weights as buckets", () => {
  it("a canary grown from 0 alone owns [0, w·1000): the 0.1 split", () => {
    const doc = emptyDocument();
    setWeight(doc, "canary", 12.5);
    expect(doc.canaries.canary!.buckets).toEqual([0, 12_500]);
    const old = buildView(undefined, [], 12.5, ALL, 0);
    expect(buildView(doc, [], 0, ALL, 0).starts).toEqual(old.starts);
    expect(buildView(doc, [], 0, ALL, 0).ends).toEqual(old.ends);
  });

  it("raising keeps every client where it was; no client ever moves between two canaries", () => {
    const doc = emptyDocument();
    setWeight(doc, "a", 10);
    setWeight(doc, "b", 20);
    const first = owners(doc, clients);
    setWeight(doc, "a", 30);
    const raised = owners(doc, clients);
    setWeight(doc, "b", 5);
    setWeight(doc, "a", 15);
    const lowered = owners(doc, clients);
    setWeight(doc, "b", 40);
    const again = owners(doc, clients);
    for (const ip of clients) {
      // Raising a: a's clients stay, b's clients stay.
      if (first.get(ip) !== undefined) expect(raised.get(ip), ip).toBe(first.get(ip));
      // Lowering: a client leaves for stable, never for the other canary.
      if (lowered.get(ip) !== undefined) expect(lowered.get(ip)).toBe(raised.get(ip));
      if (again.get(ip) !== undefined && lowered.get(ip) !== undefined) expect(again.get(ip)).toBe(lowered.get(ip));
    }
    // Lowering gave back the newest: a keeps its first 10 % and the oldest part of what it took next.
    expect(doc.canaries.a!.buckets.slice(0, 2)).toEqual([0, 10_000]);
    expect(weights(doc)).toEqual({ a: 15, b: 40 });
    const shares = [...again.values()];
    expect(shares.filter((o) => o === "a").length / clients.length).toBeCloseTo(0.15, 1);
    expect(shares.filter((o) => o === "b").length / clients.length).toBeCloseTo(0.4, 1);
    // No bucket owned twice.
    const view = buildView(doc, [], 0, ALL, 0);
    for (let i = 1; i < view.starts.length; i++) expect(view.starts[i]).toBeGreaterThanOrEqual(view.ends[i - 1]!);
  });

  it("refuses weights over 100 % together, and steps finer than 0.001 %", () => {
    const doc = emptyDocument();
    setWeight(doc, "a", 60);
    expect(() => setWeight(doc, "b", 40.001)).toThrow(RulesEditError);
    expect(() => setWeight(doc, "b", 40.001)).toThrow(/may not exceed 100 %/);
    setWeight(doc, "b", 40);
    expect(weights(doc)).toEqual({ a: 60, b: 40 });
    expect(() => setWeight(doc, "a", 0.0005)).toThrow(/steps of 0.001/);
    expect(() => setWeight(doc, "a", 101)).toThrow(RulesEditError);
    expect(() => setWeight(doc, "Bad Name", 1)).toThrow(/not a canary name/);
    expect(() => setWeight(doc, "stable", 1)).toThrow(/not a canary name/);
  });
});

describe("edits", () => {
  it("flag, unflag (for one canary only when asked) and prune expired entries", () => {
    const doc = emptyDocument();
    expect(flag(doc, "ip", "192.0.2.1", "beta", 0)).toBe(true);
    expect(flag(doc, "ip", "192.0.2.1", "beta", 0)).toBe(false);
    expect(flag(doc, "ip", "192.0.2.2", "canary", 100)).toBe(true);
    expect(unflag(doc, "ip", "192.0.2.1", "canary")).toEqual({ removed: false, canary: "beta" });
    expect(unflag(doc, "ip", "192.0.2.1")).toEqual({ removed: true, canary: "beta" });
    expect(unflag(doc, "ip", "192.0.2.1")).toEqual({ removed: false, canary: undefined });
    expect(pruneExpired(doc, 99)).toBe(0);
    expect(pruneExpired(doc, 100)).toBe(1);
    expect(doc.ips).toEqual({});
    expect(doc.canaryNames).toEqual(["beta", "canary"]);
  });
});

describe("JSON export and apply", () => {
  it("round trip: apply of an export is the same rules, buckets included", () => {
    const doc = sample();
    const json = JSON.parse(JSON.stringify(toJson(doc))) as unknown;
    const back = fromJson(json, emptyDocument());
    expect(diffDocuments(doc, back)).toEqual([]);
    expect(back.canaries.canary!.buckets).toEqual(doc.canaries.canary!.buckets);
    expect(toJson(doc)).toMatchObject({
      format: 1,
      revision: 1_700_000_000_000,
      stable: { upstream: "v2", location: "@v2" },
      canaries: { canary: { weight: 12.5, buckets: [[0, 12_500]], upstream: null, location: null } },
      ips: [
        { ip: "203.0.113.7", canary: "canary", expires: null },
        { ip: "2001:db8::1", canary: "beta", expires: 1_900_000_000 },
      ],
    });
  });

  it("a weight without buckets keeps what the canary owns now (sticky), and normalises subjects", () => {
    const current = emptyDocument();
    setWeight(current, "b", 10);
    setWeight(current, "a", 10);
    const next = fromJson(
      { format: 1, canaries: { a: { weight: 20 }, b: { weight: 5 } }, ips: [{ ip: "2001:DB8:0::1" }] },
      current,
    );
    expect(next.canaries.a!.buckets.slice(0, 2)).toEqual([10_000, 10_000]);
    expect(next.canaries.b!.buckets).toEqual([0, 5_000]);
    expect(next.ips).toEqual({ "2001:db8::1": "canary" });
    expect(diffDocuments(current, next)).toEqual([
      "~ canary a weight 10 % -> 20 %",
      "~ canary b weight 10 % -> 5 %",
      "+ canary canary weight 0 %",
      "+ ip 2001:db8::1 canary",
    ]);
  });

  const BAD: [unknown, RegExp][] = [
    [[], /the file: a JSON object/],
    [{ format: 2 }, /format: must be 1/],
    [{ format: 1, extra: 1 }, /unknown field "extra"/],
    [{ format: 1, ips: [{ ip: "203.0.113.7" }, { ip: "10.0.0.300" }] }, /ips\[1\]\.ip: not an IPv4 or IPv6 address/],
    [{ format: 1, ips: [{ ip: "203.0.113.7" }, { ip: "203.0.113.7" }] }, /ips\[1\]\.ip: listed twice/],
    [{ format: 1, ranges: [{ cidr: "10.0.0.0/33" }] }, /ranges\[0\]\.cidr: not a CIDR/],
    [{ format: 1, users: [{ user: "a b" }] }, /users\[0\]\.user: not a user id/],
    [{ format: 1, users: [{ user: "a", expires: -1 }] }, /users\[0\]\.expires/],
    [{ format: 1, users: [{ user: "a", canary: "Nope" }] }, /users\[0\]\.canary: not a canary name/],
    [{ format: 1, canaries: { a: { weight: 60 }, b: { weight: 41 } } }, /canaries\.b\.weight: .*may not exceed 100 %/],
    [{ format: 1, canaries: { a: { weight: 1.0001 } } }, /canaries\.a\.weight: .*steps of 0\.001/],
    [{ format: 1, canaries: { a: {} } }, /canaries\.a: needs a weight/],
    [
      { format: 1, canaries: { a: { buckets: [[0, 10]] }, b: { buckets: [[5, 10]] } } },
      /canaries\.b\.buckets: bucket 5 is owned twice/,
    ],
    [
      { format: 1, canaries: { a: { weight: 2, buckets: [[0, 1000]] } } },
      /canaries\.a\.weight: does not match its buckets \(1 %\)/,
    ],
    [{ format: 1, canaries: { a: { weight: 1, upstream: "http://x" } } }, /canaries\.a\.upstream/],
    [{ format: 1, stable: { location: "nowhere" } }, /stable\.location/],
  ];
  for (const [raw, message] of BAD)
    it(`refuses ${JSON.stringify(raw).slice(0, 70)}`, () => {
      expect(() => fromJson(raw, emptyDocument())).toThrow(RulesEditError);
      expect(() => fromJson(raw, emptyDocument())).toThrow(message);
    });
});
