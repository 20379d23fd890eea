-- luacheck over the Lua that `npm run build` emits (dist/lua), as OpenResty projects lint theirs.
std = "ngx_lua"
max_line_length = false
-- TypeScriptToLua's temporaries (____exports, ____temp_1, ...) are its own, not the source's,
-- and so is the `self` it gives every class method (and its class helper) whether or not the
-- method reads `this`: those are ignored. Everything else is fixed in the TypeScript source.
ignore = { "2../____.*", "4../____.*", "212/self" }
