/**
 * IP addresses read and printed by nginx's own rules (ngx_inet_addr, ngx_inet6_addr,
 * ngx_parse_addr_port, ngx_ptocidr, ngx_inet6_ntop), so that the router, nginx's realip
 * module and the CLI agree on every input, hostile ones included.
 * Pure TypeScript: compiled to Lua for nginx and to JavaScript for the Node side.
 */

/** 16-bit groups: 2 for IPv4, 8 for IPv6. Two numbers keep IPv4 cheap and CIDR code uniform. */
export type Address = number[];

export interface Cidr {
  addr: Address;
  bits: number;
}

const SPACE = 32;
const COMMA = 44;
const DOT = 46;
const SLASH = 47;
const ZERO = 48;
const NINE = 57;
const COLON = 58;
const UPPER_A = 65;
const UPPER_F = 70;
const LOWER_A = 97;
const LOWER_F = 102;
const LEFT_BRACKET = 91;
const RIGHT_BRACKET = 93;
const IPV4_NONE = 0xffffffff;
const HEX_DIGITS = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "a", "b", "c", "d", "e", "f"];

function indexOfChar(s: string, c: number, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    if (s.charCodeAt(i) === c) return i;
  }
  return -1;
}

/** ngx_atoi: decimal digits only, at least one. */
function parseDecimal(s: string, from: number, to: number, max: number): number | undefined {
  if (from >= to) return undefined;
  let value = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < ZERO || c > NINE) return undefined;
    value = value * 10 + c - ZERO;
    if (value > max) return undefined;
  }
  return value;
}

/**
 * ngx_inet_addr: dotted decimal with exactly three dots; empty and zero-padded octets pass
 * (nginx takes "1..2.3" as 1.0.2.3). 255.255.255.255 is nginx's error value, so it fails too.
 */
function parseIpv4(s: string, from: number, to: number): number | undefined {
  let addr = 0;
  let octet = 0;
  let dots = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c >= ZERO && c <= NINE) {
      octet = octet * 10 + c - ZERO;
      if (octet > 255) return undefined;
    } else if (c === DOT) {
      addr = addr * 256 + octet;
      octet = 0;
      dots++;
    } else {
      return undefined;
    }
  }
  if (dots !== 3) return undefined;
  addr = addr * 256 + octet;
  return addr === IPV4_NONE ? undefined : addr;
}

/** ngx_inet6_addr, step for step, including its embedded-IPv4 tail and its one leading ':'. */
function parseIpv6(s: string, from: number, to: number): Address | undefined {
  if (from >= to) return undefined;
  const bytes = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  let at = 0;
  let zero = -1;
  let digit = -1;
  let nibbles = 0;
  let word = 0;
  let groupsLeft = 8;
  let p = from;
  if (s.charCodeAt(p) === COLON) p++;
  for (; p < to; p++) {
    let c = s.charCodeAt(p);
    if (c === COLON) {
      if (nibbles > 0) {
        digit = p + 1;
        bytes[at++] = Math.floor(word / 256);
        bytes[at++] = word % 256;
        groupsLeft--;
        if (groupsLeft === 0) return undefined;
        nibbles = 0;
        word = 0;
        continue;
      }
      if (zero >= 0) return undefined;
      digit = p + 1;
      zero = at;
      continue;
    }
    if (c === DOT && nibbles > 0) {
      if (groupsLeft < 2 || digit < 0) return undefined;
      const v4 = parseIpv4(s, digit, to);
      if (v4 === undefined) return undefined;
      bytes[at++] = Math.floor(v4 / 16777216);
      bytes[at++] = Math.floor(v4 / 65536) % 256;
      groupsLeft--;
      word = v4 % 65536;
      break;
    }
    nibbles++;
    if (nibbles > 4) return undefined;
    if (c >= UPPER_A && c <= UPPER_F) c += LOWER_A - UPPER_A;
    if (c >= ZERO && c <= NINE) {
      word = word * 16 + c - ZERO;
    } else if (c >= LOWER_A && c <= LOWER_F) {
      word = word * 16 + c - LOWER_A + 10;
    } else {
      return undefined;
    }
  }
  if (nibbles === 0 && zero < 0) return undefined;
  bytes[at++] = Math.floor(word / 256);
  bytes[at++] = word % 256;
  groupsLeft--;
  if (groupsLeft > 0) {
    if (zero < 0) return undefined;
    // Slide what followed "::" to the end; the gap it leaves is the run of zeros.
    const gap = groupsLeft * 2;
    for (let i = at - 1; i >= zero; i--) bytes[i + gap] = bytes[i]!;
    for (let i = zero; i < zero + gap; i++) bytes[i] = 0;
  } else if (zero >= 0) {
    return undefined;
  }
  const groups: Address = [];
  for (let i = 0; i < 8; i++) groups[i] = bytes[2 * i]! * 256 + bytes[2 * i + 1]!;
  return groups;
}

/** ngx_parse_addr: an IPv4 or IPv6 address, nothing around it. */
export function parseAddress(s: string, from = 0, to = s.length): Address | undefined {
  const v4 = parseIpv4(s, from, to);
  if (v4 !== undefined) return [Math.floor(v4 / 65536), v4 % 65536];
  return parseIpv6(s, from, to);
}

/** ngx_parse_addr_port: also "1.2.3.4:80" and "[2001:db8::1]:80"; the port is checked and dropped. */
export function parseAddressPort(s: string, from: number, to: number): Address | undefined {
  const bare = parseAddress(s, from, to);
  if (bare !== undefined) return bare;
  let hostFrom = from;
  let hostTo: number;
  let colon: number;
  if (to > from && s.charCodeAt(from) === LEFT_BRACKET) {
    const close = indexOfChar(s, RIGHT_BRACKET, from, to);
    if (close < 0 || close === to - 1 || s.charCodeAt(close + 1) !== COLON) return undefined;
    hostFrom = from + 1;
    hostTo = close;
    colon = close + 1;
  } else {
    colon = indexOfChar(s, COLON, from, to);
    if (colon < 0) return undefined;
    hostTo = colon;
  }
  const port = parseDecimal(s, colon + 1, to, 65535);
  if (port === undefined || port < 1) return undefined;
  return parseAddress(s, hostFrom, hostTo);
}

/** ngx_ptocidr: "addr" or "addr/bits"; host bits are masked off, as nginx does (with a warning). */
export function parseCidr(s: string): Cidr | undefined {
  const slash = indexOfChar(s, SLASH, 0, s.length);
  const addr = parseAddress(s, 0, slash < 0 ? s.length : slash);
  if (addr === undefined) return undefined;
  const width = addr.length * 16;
  if (slash < 0) return { addr, bits: width };
  const bits = parseDecimal(s, slash + 1, s.length, width);
  if (bits === undefined) return undefined;
  const masked: Address = [];
  for (let i = 0; i < addr.length; i++) {
    const keep = Math.min(16, Math.max(0, bits - i * 16));
    const unit = 2 ** (16 - keep);
    masked[i] = Math.floor(addr[i]! / unit) * unit;
  }
  return { addr: masked, bits };
}

/** ::ffff:a.b.c.d is matched against IPv4 ranges, as ngx_cidr_match does. */
function unmapIpv4(addr: Address): Address {
  if (
    addr.length === 8 &&
    addr[5] === 0xffff &&
    addr[0] === 0 &&
    addr[1] === 0 &&
    addr[2] === 0 &&
    addr[3] === 0 &&
    addr[4] === 0
  ) {
    return [addr[6]!, addr[7]!];
  }
  return addr;
}

export function cidrContains(cidr: Cidr, addr: Address): boolean {
  const a = unmapIpv4(addr);
  if (a.length !== cidr.addr.length) return false;
  let bits = cidr.bits;
  for (let i = 0; bits > 0; i++) {
    if (bits >= 16) {
      if (a[i] !== cidr.addr[i]) return false;
      bits -= 16;
    } else {
      const unit = 2 ** (16 - bits);
      return Math.floor(a[i]! / unit) === cidr.addr[i]! / unit;
    }
  }
  return true;
}

export function anyCidrContains(cidrs: Cidr[], addr: Address): boolean {
  for (const cidr of cidrs) {
    if (cidrContains(cidr, addr)) return true;
  }
  return false;
}

function hex16(value: number): string {
  const digit = HEX_DIGITS[value % 16]!;
  return value < 16 ? digit : hex16(Math.floor(value / 16)) + digit;
}

function formatIpv4(hi: number, lo: number): string {
  return `${Math.floor(hi / 256)}.${hi % 256}.${Math.floor(lo / 256)}.${lo % 256}`;
}

/** ngx_inet6_ntop: the longest run (of two or more) zero groups becomes "::"; v4-mapped and v4-compatible tails print dotted. */
function formatIpv6(g: Address): string {
  let zero = -1;
  let last = -1;
  let max = 1;
  let run = 0;
  for (let i = 0; i < 8; i++) {
    if (g[i] !== 0) {
      if (max < run) {
        zero = last;
        max = run;
      }
      run = 0;
    } else {
      if (run === 0) last = i;
      run++;
    }
  }
  if (max < run) {
    zero = last;
    max = run;
  }
  let out = "";
  let groups = 8;
  if (zero === 0) {
    const low = g[7]!;
    if ((max === 5 && g[5] === 0xffff) || max === 6 || (max === 7 && low >= 256 && low % 256 !== 1)) {
      groups = 6;
    }
    out = ":";
  }
  for (let i = 0; i < groups; i++) {
    if (i === zero) {
      out += ":";
      i += max - 1;
      continue;
    }
    out += hex16(g[i]!);
    if (i < 7) out += ":";
  }
  if (groups === 6) out += formatIpv4(g[6]!, g[7]!);
  return out;
}

/** The text nginx prints for the address in $remote_addr. */
export function formatAddress(addr: Address): string {
  return addr.length === 2 ? formatIpv4(addr[0]!, addr[1]!) : formatIpv6(addr);
}

/** "addr/bits", the address printed as nginx prints it (so one range has one spelling). */
export function formatCidr(cidr: Cidr): string {
  return `${formatAddress(cidr.addr)}/${cidr.bits}`;
}

/**
 * The client address as realip finds it with real_ip_recursive on: walk the list from the
 * right while the current hop is trusted. Undefined means the list gave nothing usable and
 * the peer stays the client, exactly when realip would decline.
 */
export function forwardedAddress(peer: Address, list: string, trusted: Cidr[]): Address | undefined {
  let addr = peer;
  let found = false;
  let end = list.length;
  for (;;) {
    if (!anyCidrContains(trusted, addr) || end <= 0) return found ? addr : undefined;
    let p = end - 1;
    while (p > 0) {
      const c = list.charCodeAt(p);
      if (c !== SPACE && c !== COMMA) break;
      p--;
      end--;
    }
    while (p > 0) {
      const c = list.charCodeAt(p);
      if (c === SPACE || c === COMMA) {
        p++;
        break;
      }
      p--;
    }
    const hop = parseAddressPort(list, p, end);
    if (hop === undefined) return found ? addr : undefined;
    addr = hop;
    found = true;
    if (p <= 0) return addr;
    end = p - 1;
  }
}
