/** Character checks shared by option validation and the rules. Pure. */

/** Every character is an ASCII letter, a digit or one of `extra`. */
export function alnumOr(s: string, extra: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const alnum = (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
    if (!alnum && extra.indexOf(s.charAt(i)) < 0) return false;
  }
  return true;
}

const HEX = "0123456789abcdef";

/** `c` in hex, `digits` of it (no number-to-string helper: TypeScriptToLua's trips luacheck). */
function hex(c: number, digits: number): string {
  let out = "";
  for (let shift = 4 * (digits - 1); shift >= 0; shift -= 4) out += HEX.charAt(Math.floor(c / 2 ** shift) % 16);
  return out;
}

/**
 * `s` fit for a log line: bytes outside printable ASCII as `\xNN`, cut at `max` characters. A
 * store's reply is quoted in warnings, and a store answering garbage must not write raw bytes
 * (escape sequences, newlines that forge log lines) into error.log.
 */
export function printable(s: string, max = 200): string {
  const parts: string[] = [];
  const n = Math.min(s.length, max);
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    parts.push(c >= 32 && c < 127 && c !== 92 ? s.charAt(i) : c < 256 ? `\\x${hex(c, 2)}` : `\\u${hex(c, 4)}`);
  }
  if (s.length > max) parts.push(`... (${s.length} bytes)`);
  return parts.join("");
}
