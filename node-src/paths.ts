/** The project root, found from wherever this module runs (source, or compiled under dist/node). */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "tstl.json"))) return dir;
    if (dirname(dir) === dir) throw new Error(`no project root above ${from}`);
  }
}

export const ROOT = findRoot(import.meta.dirname);
/** What `npm run build` emits: gray/router.lua and friends. */
export const LUA_DIR = join(ROOT, "dist", "lua");
