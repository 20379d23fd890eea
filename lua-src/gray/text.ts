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
