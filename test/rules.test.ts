/** The decision rules and their parsers, as JavaScript (the same code runs as Lua in nginx). */
import { describe, expect, it } from "vitest";
import { anyCidrContains, type Cidr, formatAddress, parseAddress, parseCidr } from "../lua-src/gray/ip.ts";
import { BUCKETS, type RulesDocument, type RulesView, buildView, parseDocument } from "../lua-src/gray/document.ts";
import { buildRanges, parseRangeList, rangesContain } from "../lua-src/gray/ranges.ts";
import { type Lookups, type RuleOptions, cookieValue, decide, isUserId, parseWeight } from "../lua-src/gray/rules.ts";
import { hashText } from "../node-src/cli/explain.ts";

/** A document from its entry lines, with the canaries given as `name buckets` pairs. */
function documentOf(canaries: string[], entries: string[]): RulesDocument {
  const count = (kind: string) => entries.filter((e) => e.startsWith(`${kind} `)).length;
  const text = [
    `gray-rules 1 1700000000000 ${count("ip")} ${count("range")} ${count("user")}`,
    ...canaries.map((c) => `canary ${c} - -`),
    ...entries,
    `end ${entries.length}`,
    "",
  ].join("\n");
  const doc = parseDocument(text);
  if (typeof doc === "string") throw new Error(doc);
  return doc;
}

/** The default canary owning the first `weight` percent of the buckets, as `gray weight` from 0 gives it. */
function inWeight(hash: number, weight: number): boolean {
  return hash % BUCKETS < weight * (BUCKETS / 100);
}

describe("cookieValue", () => {
  const cases: [string, string, string | undefined][] = [
    ["a=1; b=2", "b", "2"],
    ["a=1;b=2", "b", "2"],
    ["  b = 2 ;", "b", "2"],
    ["ab=1; b=2", "b", "2"],
    ["b=1; b=2", "b", "1"],
    ["B=1", "b", undefined],
    ["b", "b", undefined],
    ["b=", "b", ""],
    ['b="x y"', "b", '"x y"'],
    ["a=b=c", "a", "b=c"],
    ["", "b", undefined],
    [";;;", "b", undefined],
  ];
  for (const [header, name, want] of cases)
    it(`${JSON.stringify(header)} → ${name}`, () => expect(cookieValue(header, name)).toBe(want));
});

describe("user ids", () => {
  it("accepts ids made for keys", () => {
    for (const id of ["alice", "42", "u-1.2_3~@x+y=z:w", "x".repeat(64)]) expect(isUserId(id), id).toBe(true);
  });
  it("refuses what must not reach memcached", () => {
    for (const id of ["", "x".repeat(65), "a b", "a\r\nset x 0 0 1", "é", "a/b", "a%20", "a\u0000"])
      expect(isUserId(id), JSON.stringify(id)).toBe(false);
  });
});

describe("weights", () => {
  it("parses 0-100 with decimals", () => {
    expect(["0", "1", "12.5", "100", "99.999", "050", "0.001"].map(parseWeight)).toEqual([
      0, 1, 12.5, 100, 99.999, 50, 0.001,
    ]);
  });
  it("refuses the rest", () => {
    for (const w of [
      "",
      "101",
      "100.5",
      "-1",
      "1e2",
      "0x10",
      " 5",
      "5 ",
      ".5",
      "5.",
      "50%",
      "1.2.3",
      "NaN",
      "Infinity",
    ])
      expect(parseWeight(w), w).toBeUndefined();
  });
  it("is monotonic: raising the weight only moves clients to canary", () => {
    const steps = [0, 0.5, 1, 5, 10, 12.5, 25, 50, 75, 99.9, 100];
    for (let i = 0; i < 5000; i++) {
      const h = hashText(`10.${i >> 8}.${i & 255}.7`);
      const picks = steps.map((w) => inWeight(h, w));
      expect(picks.indexOf(true) === -1 || picks.slice(picks.indexOf(true)).every(Boolean)).toBe(true);
    }
  });
  it("spreads addresses evenly: 50 % of 20,000 within 2 points", () => {
    let canary = 0;
    for (let i = 0; i < 20000; i++)
      if (inWeight(hashText(`127.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`), 50)) canary++;
    expect(Math.abs(canary / 20000 - 0.5)).toBeLessThan(0.02);
  });
});

describe("ranges", () => {
  const cidrs = (list: string[]): Cidr[] => list.map((c) => parseCidr(c)!);

  it("parses lists split by spaces, commas and newlines, and keeps the bad entries apart", () => {
    const parsed = parseRangeList(" 203.0.113.0/24,2001:db8::/32\n bogus 10.0.0.0/33 ");
    expect(parsed.cidrs.length).toBe(2);
    expect(parsed.invalid).toEqual(["bogus", "10.0.0.0/33"]);
  });

  it("agrees with a linear scan of the CIDRs on random addresses (v4, v6, v4-mapped)", () => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let round = 0; round < 50; round++) {
      const list: string[] = [];
      for (let i = 0; i < 20; i++) {
        list.push(
          rand(2)
            ? `${rand(4) + 1}.${rand(4)}.${rand(256)}.0/${16 + rand(17)}`
            : `2001:db8:${rand(4).toString(16)}::/${32 + rand(97)}`,
        );
      }
      const set = buildRanges(cidrs(list));
      for (let i = 0; i < 200; i++) {
        const text =
          rand(3) === 0
            ? `2001:db8:${rand(4).toString(16)}::${rand(65536).toString(16)}`
            : `${rand(2) ? "::ffff:" : ""}${rand(4) + 1}.${rand(4)}.${rand(256)}.${rand(256)}`;
        const addr = parseAddress(text)!;
        expect(rangesContain(set, addr), `${text} in ${list.join(" ")}`).toBe(anyCidrContains(cidrs(list), addr));
      }
    }
  });

  it("merges overlapping and touching ranges", () => {
    const set = buildRanges(cidrs(["10.0.0.0/25", "10.0.0.128/25", "10.0.0.0/24", "10.0.2.0/24"]));
    expect(set.v4.map((i) => `${formatAddress(i.lo)}-${formatAddress(i.hi)}`)).toEqual([
      "10.0.0.0-10.0.0.255",
      "10.0.2.0-10.0.2.255",
    ]);
    expect(set.size).toBe(4);
  });
});

describe("decide", () => {
  const o: RuleOptions = {
    key_prefix: "p:",
    canary_value: "1",
    override_header: "X-Gray",
    override_cookie: "gray",
    user_header: "X-User",
    user_cookie: "uid",
    ip_keys: true,
  };
  const NOW = 1700000000;
  const ROUTABLE = ["canary", "beta"];
  /** Lookups over a document (none: the configured weight) and seed keys, recording the seed keys asked. */
  function lookups(
    seeds: Record<string, string>,
    doc?: RulesDocument,
    configured: { weight?: number; ranges?: string[] } = {},
  ): Lookups & { asked: string[]; view: RulesView } {
    const asked: string[] = [];
    const view = buildView(
      doc,
      (configured.ranges ?? []).map((r) => parseCidr(r)!),
      configured.weight ?? 0,
      ROUTABLE,
      NOW,
    );
    return { asked, flag: (k) => (asked.push(k), seeds[k]), view, now: () => NOW, hash: hashText };
  }
  /** decide() with the lookups' own view, as the router passes the rules it read for the request. */
  const decideBy = (
    o: RuleOptions,
    look: Lookups & { view: RulesView },
    ...request: [string, string | undefined, string | undefined, string | undefined]
  ) => decide(o, look, look.view, ...request);
  const ip = "203.0.113.1";

  it("override always/never/<canary> decides before any store lookup", () => {
    const look = lookups({ "p:203.0.113.1": "1" });
    expect(decideBy(o, look, ip, "never", undefined, undefined)).toEqual({ route: "stable", rule: "override" });
    expect(decideBy(o, look, ip, undefined, undefined, "gray=always")).toEqual({ route: "canary", rule: "override" });
    expect(decideBy(o, look, ip, "beta", undefined, undefined)).toEqual({ route: "beta", rule: "override" });
    expect(look.asked).toEqual([]);
  });
  it("an override naming no canary this router knows falls back to the cookie, then to the rules", () => {
    expect(decideBy(o, lookups({}), ip, "maybe", undefined, "gray=always").rule).toBe("override");
    expect(decideBy(o, lookups({}), ip, "gamma", undefined, undefined).rule).toBe("none");
  });
  it("user, then IP, then range, then weight, each naming its canary", () => {
    const doc = documentOf(
      ["canary 0+100000", "beta -"],
      ["user alice beta 0", `ip ${ip} beta 0`, "range 203.0.113.0/24 beta 0"],
    );
    expect(decideBy(o, lookups({}, doc), ip, undefined, "alice", undefined)).toEqual({ route: "beta", rule: "user" });
    expect(decideBy(o, lookups({}, doc), ip, undefined, "bob", undefined)).toEqual({ route: "beta", rule: "ip" });
    expect(decideBy(o, lookups({}, doc), "203.0.113.2", undefined, undefined, undefined)).toEqual({
      route: "beta",
      rule: "range",
    });
    expect(decideBy(o, lookups({}, doc), "198.51.100.1", undefined, undefined, undefined)).toEqual({
      route: "canary",
      rule: "weight",
    });
    expect(decideBy(o, lookups({}), "198.51.100.1", undefined, undefined, undefined)).toEqual({
      route: "stable",
      rule: "none",
    });
  });
  it("a seed key with canary_value (or a canary's name) flags the IP only while ip_keys is on", () => {
    expect(decideBy(o, lookups({ "p:203.0.113.1": "1" }), ip, undefined, undefined, undefined).route).toBe("canary");
    expect(decideBy(o, lookups({ "p:203.0.113.1": "beta" }), ip, undefined, undefined, undefined).route).toBe("beta");
    expect(decideBy(o, lookups({ "p:203.0.113.1": "0" }), ip, undefined, undefined, undefined).route).toBe("stable");
    const off = lookups({ "p:203.0.113.1": "1" });
    expect(decideBy({ ...o, ip_keys: false }, off, ip, undefined, undefined, undefined).route).toBe("stable");
    expect(off.asked).toEqual([]);
  });
  it("the document answers before the seed key is asked", () => {
    const look = lookups({}, documentOf(["canary -"], [`ip ${ip} canary 0`]));
    expect(decideBy(o, look, ip, undefined, undefined, undefined).rule).toBe("ip");
    expect(look.asked).toEqual([]);
  });
  it("expired entries and entries naming a canary this router cannot send to stay on stable", () => {
    const doc = documentOf(
      ["canary -", "gamma 0+100000"],
      [`ip ${ip} canary ${NOW}`, "ip 203.0.113.2 canary " + (NOW + 1), "ip 203.0.113.3 gamma 0", "user carol canary 1"],
    );
    const look = lookups({}, doc);
    expect(decideBy(o, look, ip, undefined, undefined, undefined).route).toBe("stable");
    expect(decideBy(o, look, "203.0.113.2", undefined, undefined, undefined).route).toBe("canary");
    expect(decideBy(o, look, "203.0.113.3", undefined, undefined, undefined).route).toBe("stable");
    expect(decideBy(o, look, "203.0.113.4", undefined, "carol", undefined).route).toBe("stable");
  });
  it("configured ranges go to the default canary; the configured weight holds until a document exists", () => {
    const look = lookups({}, undefined, { weight: 100, ranges: ["203.0.113.0/24"] });
    expect(decideBy(o, look, ip, undefined, undefined, undefined)).toEqual({ route: "canary", rule: "range" });
    expect(decideBy(o, look, "198.51.100.1", undefined, undefined, undefined).rule).toBe("weight");
    const withDoc = lookups({}, documentOf(["canary -"], []), { weight: 100, ranges: ["203.0.113.0/24"] });
    expect(decideBy(o, withDoc, ip, undefined, undefined, undefined).rule).toBe("range");
    expect(decideBy(o, withDoc, "198.51.100.1", undefined, undefined, undefined).rule).toBe("none");
  });
  it("an invalid user id is never used; the cookie's valid id is", () => {
    const look = lookups({}, documentOf(["canary -"], ["user bob canary 0"]));
    expect(decideBy(o, look, ip, undefined, "a b", "uid=bob").rule).toBe("user");
  });
  it("the weight pick hashes the user id when there is one, so a user keeps the version across addresses", () => {
    const half = documentOf(["canary 0+50000"], []);
    const stableIp = Array.from({ length: 200 }, (_, i) => `203.0.113.${i}`).find((a) => !inWeight(hashText(a), 50))!;
    const user = Array.from({ length: 200 }, (_, i) => `user${i}`).find((u) => inWeight(hashText(u), 50))!;
    expect(decideBy(o, lookups({}, half), stableIp, undefined, user, undefined).rule).toBe("weight");
    expect(decideBy(o, lookups({}, half), stableIp, undefined, undefined, undefined).rule).toBe("none");
  });
  it("two canaries split by their buckets, and a client's canary is the one owning its bucket", () => {
    const doc = documentOf(["canary 0+10000,30000+5000", "beta 10000+20000"], []);
    const look = lookups({}, doc);
    for (let i = 0; i < 2000; i++) {
      const client = `10.1.${i >> 8}.${i & 255}`;
      const bucket = hashText(client) % BUCKETS;
      const want =
        bucket < 10000 || (bucket >= 30000 && bucket < 35000) ? "canary" : bucket < 30000 ? "beta" : "stable";
      expect(decideBy(o, look, client, undefined, undefined, undefined).route, client).toBe(want);
    }
  });
});
