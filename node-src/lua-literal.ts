/** Renders plain data as a Lua table constructor, for configure({...}) in generated nginx configs. */

export type LuaValue = string | number | boolean | undefined | LuaValue[] | { [key: string]: LuaValue };

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

function luaString(s: string): string {
  // Lua's escapes for what may not appear raw inside a quoted string; everything else passes through.
  return `"${s.replace(/[\\"\n\r\0]/g, (c) => ({ "\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\0": "\\0" })[c]!)}"`;
}

export function toLua(value: LuaValue): string {
  if (typeof value === "string") return luaString(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`not a finite number: ${value}`);
    return String(value);
  }
  if (typeof value === "boolean") return String(value);
  if (value === undefined) return "nil";
  if (Array.isArray(value)) return `{ ${value.map(toLua).join(", ")} }`;
  const fields = Object.entries(value)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${IDENTIFIER.test(k) ? k : `[${luaString(k)}]`} = ${toLua(v)}`);
  return fields.length === 0 ? "{}" : `{ ${fields.join(", ")} }`;
}
