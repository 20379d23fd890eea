/** nginx's address rules, as shared TypeScript (run here as JavaScript; in nginx as Lua via the realip oracle test). */
import { describe, expect, it } from "vitest";
import { cidrContains, formatAddress, parseAddress, parseAddressPort, parseCidr } from "../lua-src/gray/ip.ts";

const norm = (s: string) => {
  const a = parseAddress(s);
  return a === undefined ? undefined : formatAddress(a);
};

describe("parse and print as nginx does", () => {
  const cases: [string, string | undefined][] = [
    ["203.0.113.5", "203.0.113.5"],
    ["01.02.03.004", "1.2.3.4"],
    ["1..2.3", "1.0.2.3"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", undefined],
    ["256.1.1.1", undefined],
    ["1.2.3", undefined],
    ["1.2.3.4.5", undefined],
    ["1.2.3.4 ", undefined],
    ["", undefined],
    ["::1", "::1"],
    ["::", "::"],
    ["2001:DB8:0:0::1", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
    ["1::", "1::"],
    [":1::", "1::"],
    ["::ffff:203.0.113.5", "::ffff:203.0.113.5"],
    ["::ffff:cb00:7105", "::ffff:203.0.113.5"],
    ["::0.0.1.2", "::0.0.1.2"],
    ["::2", "::2"],
    ["::101", "::101"],
    ["0:0:0:0:0:0:0:0", "::"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:2:3:4:5:6:7:8:9", undefined],
    ["1::2::3", undefined],
    ["12345::", undefined],
    ["fe80::1%eth0", undefined],
    ["g::1", undefined],
  ];
  for (const [input, expected] of cases)
    it(`${JSON.stringify(input)} -> ${expected}`, () => expect(norm(input)).toBe(expected));
});

describe("address with port", () => {
  const cases: [string, string | undefined][] = [
    ["203.0.113.5:443", "203.0.113.5"],
    ["203.0.113.5:0", undefined],
    ["203.0.113.5:65536", undefined],
    ["[2001:db8::1]:8080", "2001:db8::1"],
    ["[2001:db8::1]", undefined],
    ["[2001:db8::1]:", undefined],
    ["2001:db8::1", "2001:db8::1"],
  ];
  for (const [input, expected] of cases) {
    it(input, () => {
      const a = parseAddressPort(input, 0, input.length);
      expect(a && formatAddress(a)).toBe(expected);
    });
  }
});

describe("CIDR", () => {
  const inside = (cidr: string, ip: string) => cidrContains(parseCidr(cidr)!, parseAddress(ip)!);
  it("matches by prefix", () => {
    expect(inside("10.0.0.0/8", "10.255.1.2")).toBe(true);
    expect(inside("10.0.0.0/8", "11.0.0.1")).toBe(false);
    expect(inside("127.0.0.64/26", "127.0.0.127")).toBe(true);
    expect(inside("127.0.0.64/26", "127.0.0.128")).toBe(false);
    expect(inside("2001:db8:ffff::/48", "2001:db8:ffff:1::1")).toBe(true);
    expect(inside("2001:db8:ffff::/48", "2001:db8:fffe::1")).toBe(false);
    expect(inside("0.0.0.0/0", "203.0.113.5")).toBe(true);
    expect(inside("::/0", "203.0.113.5")).toBe(false);
  });
  it("matches IPv4-mapped IPv6 against IPv4 ranges, as ngx_cidr_match does", () => {
    expect(inside("203.0.113.0/24", "::ffff:203.0.113.5")).toBe(true);
  });
  it("masks host bits, as nginx does", () => {
    expect(formatAddress(parseCidr("10.1.2.3/8")!.addr)).toBe("10.0.0.0");
  });
  it("refuses what nginx refuses", () => {
    for (const bad of ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "host.example", ""])
      expect(parseCidr(bad), bad).toBeUndefined();
  });
});
