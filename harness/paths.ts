/** Where the build and the harness's own files are. */
import { join } from "node:path";
import { LUA_DIR, ROOT } from "../node-src/paths.ts";

export { LUA_DIR, ROOT };
/** resty/memcached.lua for Debian's nginx.memcached. */
export const LUA_SHIM_DIR = join(ROOT, "harness", "lua");
