/**
 * The router's own work on the request path, timed inside nginx's LuaJIT: route_upstream() (the
 * variable pattern's access handler: the client's address, the rules in force, the decision, the
 * rule counter, $gray_upstream) with a seed-key lookup answered from the cache (ip_keys, the
 * default) and without one (ip_keys = false), and log() (the route route_upstream() kept for it,
 * the route counters, the histogram): timed as route_upstream() then log(), less route_upstream()
 * alone, since log() takes what route_upstream() kept. Each called in a loop from one request: what
 * the main table's CPU per request cannot isolate on a shared machine, to the nanosecond.
 */
import type { Runtime } from "../harness/runtime.ts";
import { timedInNginx } from "./measure.ts";

export interface PathCost {
  /** Nanoseconds per call. */
  routeCached: number;
  routeNoIpKeys: number;
  log: number;
}

const chunk = (memcachedPort: number) => `
local router = require("gray.router")
local N = 200000
-- os.clock: the worker's own CPU time (this request is all it runs), not the wall clock a busy machine stretches.
local function ns(f) local t = os.clock() for _ = 1, N do f() end return (os.clock() - t) * 1e9 / N end
local function best(options, f)
  router.configure(options)
  f() -- the first call starts the worker's rules timer and loads (nothing, here) from memcached
  local b = math.huge
  for _ = 1, 5 do b = math.min(b, ns(f)) end
  return b
end
-- As in a served request: log() has run in this worker before (else route_upstream() counts towards its warning).
router.log()
local mc = { host = "127.0.0.1", port = ${memcachedPort} }
local cached = best({ memcached = mc }, router.route_upstream)
local plain = best({ memcached = mc, ip_keys = false }, router.route_upstream)
local request = best({ memcached = mc, ip_keys = false }, function() router.route_upstream() router.log() end)
ngx.say(string.format('{"routeCached":%.1f,"routeNoIpKeys":%.1f,"log":%.1f}', cached, plain, request - plain))
`;

export function pathCost(runtime: Runtime, luaPaths: string[], memcachedPort: number): Promise<PathCost> {
  return timedInNginx<PathCost>(runtime, luaPaths, "gray_cache 10m", chunk(memcachedPort), ['set $gray_upstream "";']);
}
