/** The rules document's reader and view (lua-src/gray/document.ts, the same code the router runs as Lua). */
import { describe, expect, it } from "vitest";
import {
  DocumentReader,
  bucketOwner,
  buildView,
  formatPointer,
  isCanaryName,
  parseBuckets,
  parseDocument,
  parsePointer,
} from "../lua-src/gray/document.ts";

const GOOD = [
  "gray-rules 1 1764480000123 2 1 1",
  "stable - -",
  "canary canary 0+5000,20000+100 - -",
  "canary beta 5000+1000 beta @beta",
  "history 1764480000123 1764480000 ops@host - add 203.0.113.7",
  "history 1764470000000 1764470000 ops@host 1:1764470000000:abcd0123:200:7,8 weight 5",
  "ip 203.0.113.7 canary 0",
  "ip 2001:db8::1 beta 1764490000",
  "range 198.51.100.0/24 canary 0",
  "user alice beta 0",
  "end 4",
  "",
].join("\n");

describe("rules document", () => {
  it("reads every record", () => {
    const doc = parseDocument(GOOD);
    if (typeof doc === "string") throw new Error(doc);
    expect(doc.revision).toBe(1764480000123);
    expect(doc.canaryNames).toEqual(["canary", "beta"]);
    expect(doc.canaries.canary!.buckets).toEqual([0, 5000, 20000, 100]);
    expect(doc.canaries.beta).toEqual({ buckets: [5000, 1000], upstream: "beta", location: "@beta" });
    expect(doc.ips).toEqual({ "203.0.113.7": "canary", "2001:db8::1": "beta" });
    expect(doc.ipExpires).toEqual({ "2001:db8::1": 1764490000 });
    expect(doc.ranges).toEqual({ "198.51.100.0/24": "canary" });
    expect(doc.users).toEqual({ alice: "beta" });
    expect(doc.history[1]).toEqual({
      revision: 1764470000000,
      at: 1764470000,
      by: "ops@host",
      pointer: "1 1764470000000 abcd0123 200 7,8",
      change: "weight 5",
    });
    expect(doc.entries).toBe(4);
  });

  it("reads the same document fed in whole-line chunks", () => {
    const lines = GOOD.split(/(?<=\n)/);
    const reader = new DocumentReader(undefined);
    for (const part of [lines.slice(0, 5), lines.slice(5, 9), lines.slice(9)]) {
      reader.feed(part.join(""));
      while (reader.step(2));
    }
    expect(reader.finish()).toEqual(parseDocument(GOOD));
  });

  const broken: [string, (text: string) => string][] = [
    ["cut before its end line", (t) => t.slice(0, t.indexOf("end 4"))],
    ["an end line with the wrong count", (t) => t.replace("end 4", "end 5")],
    ["an entry naming an undeclared canary", (t) => t.replace("user alice beta", "user alice gamma")],
    ["a second canary line for one name", (t) => t.replace("canary beta 5000", "canary canary 5000")],
    ["buckets past the last", (t) => t.replace("20000+100", "99990+100")],
    ["an empty bucket run", (t) => t.replace("20000+100", "20000+0")],
    ["a range that is no CIDR", (t) => t.replace("198.51.100.0/24", "198.51.100.0/33")],
    ["an expiry that is no number", (t) => t.replace("beta 1764490000", "beta soon")],
    ["an extra field", (t) => t.replace("ip 203.0.113.7 canary 0", "ip 203.0.113.7 canary 0 x")],
    ["an unknown record", (t) => t.replace("stable - -", "stable - -\nflag 1.2.3.4")],
    ["text after the end line", (t) => t + "ip 203.0.113.9 canary 0\n"],
    ["another format", (t) => t.replace("gray-rules 1 ", "gray-rules 2 ")],
    ["a header without counts", (t) => t.replace("1764480000123 2 1 1", "1764480000123")],
    ["a canary name that is not one", (t) => t.replace("canary beta 5000", "canary Beta 5000")],
  ];
  for (const [what, spoil] of broken) {
    it(`refuses ${what}`, () => expect(typeof parseDocument(spoil(GOOD))).toBe("string"));
  }

  it("with a check (the CLI), refuses bad subjects and bytes that are not printable ASCII", () => {
    const check = (kind: string, subject: string) => kind !== "ip" || subject !== "203.0.113.7";
    expect(parseDocument(GOOD, check)).toMatch(/line 7: not a valid ip: 203.0.113.7/);
    expect(parseDocument(GOOD.replace("alice", "al\u00e9ce"), () => true)).toMatch(/printable ASCII/);
    // The router has no check: such a key never matches a client, so it does no harm.
    expect(typeof parseDocument(GOOD.replace("alice", "al\u00e9ce"))).toBe("object");
  });

  it("canary names", () => {
    for (const name of ["canary", "beta", "v2-1_x", "a".repeat(32)]) expect(isCanaryName(name), name).toBe(true);
    for (const name of ["", "stable", "Beta", "a b", "a".repeat(33), "é"]) expect(isCanaryName(name), name).toBe(false);
  });

  it("pointers round-trip, and anything else is refused", () => {
    const p = { revision: 1764480000123, nonce: "abcd0123", bytes: 1234, crcs: [1, 4294967295] };
    expect(parsePointer(formatPointer(p))).toEqual(p);
    const signedPointer = { ...p, signature: "q83vEjRWeJq83vEjRWeJq83vEjQ=" };
    expect(parsePointer(formatPointer(signedPointer))).toEqual(signedPointer);
    for (const bad of [
      "hmac-sha1=short=",
      "hmac-md5=q83vEjRWeJq83vEjRWeJq83vEjQ=",
      "hmac-sha1=q83vEjRWeJq83vEjRWeJq83vEj!=",
    ])
      expect(parsePointer(`${formatPointer(p)} ${bad}`), bad).toBeUndefined();
    for (const bad of ["", "1", "2 1 a 1 1", "1 x a 1 1", "1 1 a 1 1,", "1 1 a 1 1 extra", "1 1 a-b 1 1", "1 1 a 1 -1"])
      expect(parsePointer(bad), bad).toBeUndefined();
  });

  it("bucket runs", () => {
    expect(parseBuckets("-")).toEqual([]);
    expect(parseBuckets("0+1,99999+1")).toEqual([0, 1, 99999, 1]);
    for (const bad of ["", "0", "0+", "+1", "0+1,", "1+100000", "a+1"]) expect(parseBuckets(bad), bad).toBeUndefined();
  });

  it("the view orders bucket runs and finds each bucket's canary", () => {
    const doc = parseDocument(GOOD);
    if (typeof doc === "string") throw new Error(doc);
    const view = buildView(doc, [], 0, ["canary", "beta"], 0);
    expect([view.starts, view.ends, view.owners]).toEqual([
      [0, 5000, 20000],
      [5000, 6000, 20100],
      ["canary", "beta", "canary"],
    ]);
    expect([0, 4999, 5000, 5999, 6000, 20050, 20100].map((b) => bucketOwner(view, b))).toEqual([
      "canary",
      "canary",
      "beta",
      "beta",
      undefined,
      "canary",
      undefined,
    ]);
    // A canary the router cannot send to owns nothing here.
    expect(buildView(doc, [], 0, ["canary"], 0).owners).toEqual(["canary", "canary"]);
  });

  it("a range is dropped from the view once it expires, and the view says when that is", () => {
    const text = GOOD.replace("range 198.51.100.0/24 canary 0", "range 198.51.100.0/24 canary 1764480100");
    const doc = parseDocument(text);
    if (typeof doc === "string") throw new Error(doc);
    expect(buildView(doc, [], 0, ["canary"], 1764480000).rangeCount).toBe(1);
    expect(buildView(doc, [], 0, ["canary"], 1764480000).nextExpiry).toBe(1764480100);
    expect(buildView(doc, [], 0, ["canary"], 1764480100).rangeCount).toBe(0);
  });
});
