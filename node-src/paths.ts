/**
 * The project root, found from wherever this module runs: the source, the build under dist/node,
 * or an installed npm package (which has the build and package.json, not the sources).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

function isOurs(dir: string): boolean {
  const file = join(dir, "package.json");
  return existsSync(file) && (JSON.parse(readFileSync(file, "utf8")) as { name?: string }).name === "gray-router";
}

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (isOurs(dir)) return dir;
    if (dirname(dir) === dir) throw new Error(`no gray-router package above ${from}`);
  }
}

export const ROOT = findRoot(import.meta.dirname);
/** What `npm run build` emits: gray/router.lua and friends. */
export const LUA_DIR = join(ROOT, "dist", "lua");
/** The drop-in examples `npm run build` writes. */
export const EXAMPLES_DIR = join(ROOT, "dist", "nginx");
