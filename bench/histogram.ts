/**
 * What the latency histogram adds to the log line, timed inside nginx's LuaJIT with the router's
 * own counters module: log()'s counting as it was (requests, the 5xx test, the upstream-seconds
 * sum) against the same plus observe() (the bucket search and two more slot updates), over a
 * spread of response times (most under 5 ms, a tail up to 12 s, as a real route sees them); the best
 * of 5 interleaved runs of each.
 */
import type { Runtime } from "../harness/runtime.ts";
import { timedInNginx } from "./measure.ts";

export interface HistogramCost {
  /** Nanoseconds per logged request. */
  without: number;
  with: number;
}

const CHUNK = `
local counters = require("gray.counters")
counters.useDict(ngx.shared.gray_bench)
counters.useRoutes({ "stable", "canary" })
local slots = counters.routeCounter("stable")
local count, observe = counters.count, counters.observe
local times = {}
for i = 1, 1000 do times[i] = (i % 100 == 0) and (i / 80) or ((i % 17) * 0.0004) end
local N = 5000000
local function ns(f) ngx.update_time() local t = ngx.now() f() ngx.update_time() return (ngx.now() - t) * 1e9 / N end
local status = 200
local function logLine(withHistogram)
  return function()
    for i = 1, N do
      local s = times[i % 1000 + 1]
      count(slots.requests, 1)
      if status >= 500 then count(slots.responses_5xx, 1) end
      count(slots.upstream_seconds, s)
      if withHistogram then observe(slots, s) end
    end
  end
end
local plain, histogram = logLine(false), logLine(true)
-- Interleaved, the best of 5 each: the machine's other work only ever adds time.
local without, with = math.huge, math.huge
for _ = 1, 5 do
  without = math.min(without, ns(plain))
  with = math.min(with, ns(histogram))
end
ngx.say(string.format('{"without":%.2f,"with":%.2f}', without, with))
`;

export function histogramCost(runtime: Runtime, luaPaths: string[]): Promise<HistogramCost> {
  return timedInNginx<HistogramCost>(runtime, luaPaths, "gray_bench 1m", CHUNK);
}
