/**
 * The TypeScriptToLua runtime helpers that sit on the request path, timed inside nginx's own
 * LuaJIT against the plain Lua they stand for: __TS__StringCharCodeAt (every byte the IP parser
 * and the user-id check read) against string.byte, and the two hot functions built on it. Also the
 * choice behind the rules in memory: a lookup in a worker's Lua table against one in a shared
 * dict, each holding 100,000 addresses.
 */
import type { Runtime } from "../harness/runtime.ts";
import { timedInNginx } from "./measure.ts";

export interface HelperTimes {
  /** Nanoseconds per call. */
  charCodeAtHelper: number;
  stringByte: number;
  parseAddressV4: number;
  parseAddressV6: number;
  userIdCheck: number;
  /** A flagged address found among 100,000: in a Lua table, and in a lua_shared_dict. */
  tableLookup: number;
  dictLookup: number;
}

// The helper is copied from dist/lua/gray/ip.lua's inline import, so both loops run in the same chunk.
const CHUNK = `
local ip = require("gray.ip")
local rules = require("gray.rules")
local function charCodeAt(s, i) if i ~= i then i = 0 end if i < 0 then return 0 / 0 end return string.byte(s, i + 1) or 0 / 0 end
local N = 2000000
local function ns(f) ngx.update_time() local t = ngx.now() f() ngx.update_time() return (ngx.now() - t) * 1e9 / N end
local s = "user-12345@example.com"
local x = 0
local helper = ns(function() for i = 1, N do x = x + charCodeAt(s, i % 20) end end)
local byte = ns(function() for i = 1, N do x = x + string.byte(s, i % 20 + 1) end end)
local v4 = ns(function() for i = 1, N do ip.parseAddress("198.51.100.23") end end)
local v6 = ns(function() for i = 1, N do ip.parseAddress("2001:db8::1") end end)
local uid = ns(function() for i = 1, N do rules.isUserId(s) end end)
local dict, t, keys = ngx.shared.bench_rules, {}, {}
for i = 1, 100000 do
  local k = string.format("10.%d.%d.%d", i / 65536 % 256, i / 256 % 256, i % 256)
  t[k] = "canary"
  dict:set(k, "canary")
  if i % 100 == 0 then keys[#keys + 1] = k end
end
local tbl = ns(function() for i = 1, N do if t[keys[i % 1000 + 1]] == "canary" then x = x + 1 end end end)
local shd = ns(function() for i = 1, N do if dict:get(keys[i % 1000 + 1]) == "canary" then x = x + 1 end end end)
ngx.say(string.format('{"charCodeAtHelper":%.2f,"stringByte":%.2f,"parseAddressV4":%.1f,"parseAddressV6":%.1f,"userIdCheck":%.1f,"tableLookup":%.1f,"dictLookup":%.1f}', helper, byte, v4, v6, uid, tbl, shd))
`;

export function helperTimes(runtime: Runtime, luaPaths: string[]): Promise<HelperTimes> {
  return timedInNginx<HelperTimes>(runtime, luaPaths, "bench_rules 32m", CHUNK);
}
