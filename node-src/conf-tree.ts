/**
 * Reads an nginx configuration (as `nginx -T` prints it, includes expanded) into a tree of
 * directives, so `gray check` can look at what the router depends on: the shared dict, the
 * log line, the access handlers, the upstream blocks. Not a full nginx parser: it knows words,
 * quotes, comments, blocks, and that a `*_by_lua_block { … }` holds Lua, not directives.
 */

export interface Directive {
  name: string;
  args: string[];
  /** The directives of its block, when it has one. */
  block?: Directive[];
  /** The Lua source of a *_by_lua_block. */
  lua?: string;
  /** Where it starts in the text, for messages: the file `nginx -T` named and the line in it. */
  file: string;
  line: number;
}

export class ConfSyntaxError extends Error {}

/** The position of the brace closing the Lua block that opens at `open`, skipping Lua strings and comments. */
function luaBlockEnd(text: string, open: number): number {
  let depth = 0;
  let i = open;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "-" && text.startsWith("--", i)) {
      const long = /^--\[(=*)\[/.exec(text.slice(i, i + 40));
      const close = long ? text.indexOf(`]${long[1]}]`, i) : text.indexOf("\n", i);
      i = close < 0 ? text.length : close + (long ? long[1]!.length + 2 : 1);
      continue;
    }
    if (c === "[") {
      const long = /^\[(=*)\[/.exec(text.slice(i, i + 40));
      if (long) {
        const close = text.indexOf(`]${long[1]}]`, i);
        i = close < 0 ? text.length : close + long[1]!.length + 2;
        continue;
      }
    }
    if (c === '"' || c === "'") {
      i++;
      while (i < text.length && text[i] !== c) i += text[i] === "\\" ? 2 : 1;
    } else if (c === "{") depth++;
    else if (c === "}" && --depth === 0) return i;
    i++;
  }
  throw new ConfSyntaxError("a Lua block is not closed");
}

/** `nginx -T` prints each file after a line "# configuration file PATH:"; lines are counted per file. */
function fileAt(text: string, pos: number): { file: string; line: number } {
  const before = text.slice(0, pos);
  const marker = before.lastIndexOf("# configuration file ");
  if (marker < 0) return { file: "", line: before.split("\n").length };
  const header = /^# configuration file (.*):$/m.exec(before.slice(marker));
  const startOfFile = before.indexOf("\n", marker) + 1;
  return { file: header?.[1] ?? "", line: before.slice(startOfFile).split("\n").length };
}

export function parseConf(text: string): Directive[] {
  let pos = 0;

  function word(): string | undefined {
    for (;;) {
      while (pos < text.length && /\s/.test(text[pos]!)) pos++;
      if (text[pos] !== "#") break;
      const eol = text.indexOf("\n", pos);
      pos = eol < 0 ? text.length : eol + 1;
    }
    if (pos >= text.length) return undefined;
    const c = text[pos]!;
    if (c === "{" || c === "}" || c === ";") {
      pos++;
      return c;
    }
    if (c === '"' || c === "'") {
      let out = "";
      pos++;
      while (pos < text.length && text[pos] !== c) {
        if (text[pos] === "\\" && pos + 1 < text.length) pos++;
        out += text[pos++];
      }
      if (pos >= text.length)
        throw new ConfSyntaxError(`a quoted string is not closed (${JSON.stringify(out.slice(0, 40))})`);
      pos++;
      return out;
    }
    const start = pos;
    while (pos < text.length && !/[\s{};]/.test(text[pos]!)) pos++;
    return text.slice(start, pos);
  }

  function block(nested: boolean): Directive[] {
    const out: Directive[] = [];
    for (;;) {
      const start = pos;
      const name = word();
      if (name === undefined) {
        if (nested) throw new ConfSyntaxError("a block is not closed");
        return out;
      }
      if (name === "}") {
        if (!nested) throw new ConfSyntaxError(`unexpected "}" at line ${fileAt(text, start).line}`);
        return out;
      }
      const where = fileAt(text, start + (text.slice(start).length - text.slice(start).trimStart().length));
      const d: Directive = { name, args: [], ...where };
      for (;;) {
        if (name.endsWith("_by_lua_block")) {
          const open = text.indexOf("{", pos);
          const close = luaBlockEnd(text, open);
          d.lua = text.slice(open + 1, close);
          pos = close + 1;
          break;
        }
        const w = word();
        if (w === undefined) throw new ConfSyntaxError(`directive "${name}" is not terminated`);
        if (w === ";") break;
        if (w === "{") {
          d.block = block(true);
          break;
        }
        d.args.push(w);
      }
      out.push(d);
    }
  }

  return block(false);
}

/** Every directive named `name` anywhere below `tree`, depth first. */
export function findAll(tree: Directive[], name: string): Directive[] {
  const out: Directive[] = [];
  for (const d of tree) {
    if (d.name === name) out.push(d);
    if (d.block) out.push(...findAll(d.block, name));
  }
  return out;
}
