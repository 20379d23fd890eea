/**
 * The layout's import rules, read from the sources (no servers): no import cycle anywhere, and
 * imports run one way, bench → harness → node-src → page → lua-src, with test free to use them all.
 * Type-only imports count too: a cycle through types is still two modules that cannot be
 * understood, moved or split apart.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "..");
/** Lowest first: a folder may import from itself and from the folders before it, never after. */
const LAYERS = ["lua-src", "page", "node-src", "harness", "bench", "test"] as const;

/** Every .ts file under a folder, as a path relative to the repository (declarations are ambient, never imported). */
function sourceFiles(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
    .map((f) => join(folder, f))
    .sort();
}

interface Imports {
  /** Repository-relative paths of the files imported by relative specifiers. */
  files: string[];
  /** Bare specifiers: packages, node: builtins, modules nginx provides. */
  bare: string[];
}

/** What a file imports, by TypeScript's own scanner (static, type-only, re-exports, dynamic import()). */
function importsOf(file: string): Imports {
  const found = ts
    .preProcessFile(readFileSync(join(ROOT, file), "utf8"), true, false)
    .importedFiles.map((f) => f.fileName);
  const files: string[] = [];
  const bare: string[] = [];
  for (const spec of found) {
    if (!spec.startsWith(".")) {
      bare.push(spec);
      continue;
    }
    const target = relative(ROOT, resolve(ROOT, dirname(file), spec));
    // Every relative import names its .ts file (allowImportingTsExtensions): anything else would go unchecked here.
    if (!target.endsWith(".ts") || !existsSync(join(ROOT, target)))
      throw new Error(`${file}: cannot resolve import "${spec}"`);
    files.push(target);
  }
  return { files, bare };
}

/** Each cycle found by a depth-first walk, as the path that closes it ("a → b → a"). */
function findCycles(graph: Map<string, string[]>): string[] {
  const cycles: string[] = [];
  const done = new Set<string>();
  const path: string[] = [];
  const onPath = new Set<string>();
  const visit = (node: string) => {
    path.push(node);
    onPath.add(node);
    for (const next of graph.get(node) ?? []) {
      if (onPath.has(next)) cycles.push([...path.slice(path.indexOf(next)), next].join(" → "));
      else if (!done.has(next)) visit(next);
    }
    path.pop();
    onPath.delete(node);
    done.add(node);
  };
  for (const node of graph.keys()) if (!done.has(node)) visit(node);
  return cycles;
}

const layerOf = (file: string) => LAYERS.findIndex((layer) => file.startsWith(`${layer}/`));

const files = LAYERS.flatMap(sourceFiles);
const imports = new Map(files.map((f) => [f, importsOf(f)]));

describe("import layout", () => {
  it("finds the files and their imports (the check below is not vacuous)", () => {
    for (const layer of LAYERS)
      expect(
        files.some((f) => f.startsWith(`${layer}/`)),
        layer,
      ).toBe(true);
    expect(imports.get("harness/stack.ts")?.files).toContain("node-src/nginx-conf.ts");
  });

  it("has no import cycle", () => {
    expect(findCycles(new Map([...imports].map(([f, i]) => [f, i.files])))).toEqual([]);
  });

  it("imports only one way: lua-src ← page ← node-src ← harness ← bench, test uses all", () => {
    const upward = [...imports].flatMap(([file, i]) =>
      i.files
        .filter((target) => layerOf(target) < 0 || layerOf(target) > layerOf(file))
        .map((target) => `${file} imports ${target}`),
    );
    expect(upward).toEqual([]);
  });

  it("lua-src imports no package but the modules nginx provides (tstl.json noResolvePaths)", () => {
    const provided = (
      JSON.parse(readFileSync(join(ROOT, "tstl.json"), "utf8")) as { tstl: { noResolvePaths: string[] } }
    ).tstl.noResolvePaths;
    const foreign = [...imports]
      .filter(([file]) => layerOf(file) === 0)
      .flatMap(([file, i]) =>
        i.bare.filter((spec) => !provided.includes(spec)).map((spec) => `${file} imports ${spec}`),
      );
    expect(foreign).toEqual([]);
  });

  it("page imports nothing at run time: the browser runs it as one inline script (type-only imports are erased)", () => {
    const runtime = [...imports]
      .filter(([file]) => file.startsWith("page/"))
      .flatMap(([file]) =>
        ts
          .createSourceFile(file, readFileSync(join(ROOT, file), "utf8"), ts.ScriptTarget.Latest)
          .statements.filter(
            (st) =>
              (ts.isImportDeclaration(st) && st.importClause?.isTypeOnly !== true) ||
              (ts.isExportDeclaration(st) && st.moduleSpecifier !== undefined && !st.isTypeOnly),
          )
          .map((st) => `${file}: ${st.getText()}`),
      );
    expect(imports.has("page/status.ts")).toBe(true);
    expect(runtime).toEqual([]);
  });
});

describe("findCycles", () => {
  it("names a cycle, and finds none in a graph without one", () => {
    const graph = (edges: [string, string][]) => {
      const g = new Map<string, string[]>();
      for (const [from, to] of edges) g.set(from, [...(g.get(from) ?? []), to]);
      return g;
    };
    expect(
      findCycles(
        graph([
          ["a", "b"],
          ["b", "c"],
          ["a", "c"],
        ]),
      ),
    ).toEqual([]);
    expect(
      findCycles(
        graph([
          ["a", "b"],
          ["b", "c"],
          ["c", "a"],
        ]),
      ),
    ).toEqual(["a → b → c → a"]);
    expect(findCycles(graph([["a", "a"]]))).toEqual(["a → a"]);
  });
});
