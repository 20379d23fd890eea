/** The decision rules and their parsers, as JavaScript (the same code runs as Lua in nginx). */
import { describe, expect, it } from "vitest";
import { anyCidrContains, type Cidr, formatAddress, parseAddress, parseCidr } from "../lua-src/gray/ip.ts";
import { buildRanges, parseRangeList, rangesContain } from "../lua-src/gray/ranges.ts";
import {
  type Lookups,
  type RuleOptions,
  cookieValue,
  decide,
  inWeight,
  isUserId,
  liveWeight,
  parseWeight,
} from "../lua-src/gray/rules.ts";
import { hashText } from "../node-src/cli/explain.ts";

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
  it("falls back to the configured weight when the stored one is absent or bad", () => {
    expect(liveWeight(undefined, 7)).toBe(7);
    expect(liveWeight("junk", 7)).toBe(7);
    expect(liveWeight("30", 7)).toBe(30);
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
  };
  function lookups(flags: Record<string, string>, weight = 0, ranges: string[] = []): Lookups & { asked: string[] } {
    const asked: string[] = [];
    return {
      asked,
      flag: (k) => (asked.push(k), flags[k]),
      globals: () => ({ ranges: buildRanges(ranges.map((r) => parseCidr(r)!)), weight }),
      hash: hashText,
    };
  }

  it("override always/never decides before any store lookup", () => {
    const look = lookups({ "p:203.0.113.1": "1" });
    expect(decide(o, look, "203.0.113.1", "never", undefined, undefined)).toEqual({ canary: false, rule: "override" });
    expect(decide(o, look, "203.0.113.1", undefined, undefined, "gray=always")).toEqual({
      canary: true,
      rule: "override",
    });
    expect(look.asked).toEqual([]);
  });
  it("an override header that is neither value falls back to the cookie", () => {
    expect(decide(o, lookups({}), "203.0.113.1", "maybe", undefined, "gray=always").rule).toBe("override");
  });
  it("user, then IP, then range, then weight", () => {
    expect(
      decide(o, lookups({ "p:uid:alice": "1", "p:203.0.113.1": "1" }), "203.0.113.1", undefined, "alice", undefined)
        .rule,
    ).toBe("user");
    expect(
      decide(
        o,
        lookups({ "p:203.0.113.1": "1" }, 100, ["203.0.113.0/24"]),
        "203.0.113.1",
        undefined,
        "alice",
        undefined,
      ).rule,
    ).toBe("ip");
    expect(decide(o, lookups({}, 100, ["203.0.113.0/24"]), "203.0.113.1", undefined, undefined, undefined).rule).toBe(
      "range",
    );
    expect(decide(o, lookups({}, 100), "203.0.113.1", undefined, undefined, undefined)).toEqual({
      canary: true,
      rule: "weight",
    });
    expect(decide(o, lookups({}, 0), "203.0.113.1", undefined, undefined, undefined)).toEqual({
      canary: false,
      rule: "none",
    });
  });
  it("an invalid user id never reaches the store; the cookie's valid id is used instead", () => {
    const look = lookups({ "p:uid:bob": "1" });
    expect(decide(o, look, "203.0.113.1", undefined, "a b", "uid=bob").rule).toBe("user");
    expect(look.asked).toEqual(["p:uid:bob"]);
  });
  it("the weight pick hashes the user id when there is one, so a user keeps the version across addresses", () => {
    const ip = Array.from({ length: 200 }, (_, i) => `203.0.113.${i}`).find((a) => !inWeight(hashText(a), 50))!;
    const user = Array.from({ length: 200 }, (_, i) => `user${i}`).find((u) => inWeight(hashText(u), 50))!;
    expect(decide(o, lookups({}, 50), ip, undefined, user, undefined).rule).toBe("weight");
    expect(decide(o, lookups({}, 50), ip, undefined, undefined, undefined).rule).toBe("none");
  });
});
