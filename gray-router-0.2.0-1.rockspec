-- The Lua that `npm run build` generates from lua-src/ (TypeScript) is what is released:
-- `luarocks make` in a built checkout installs dist/lua; the source archive is the npm
-- tarball of the same release (it carries dist/lua under package/), kept next to this file.
-- test/rock.test.ts holds build.modules to the files the build emits.
rockspec_format = "3.0"
package = "gray-router"
version = "0.2.0-1"
source = {
   url = "gray-router-0.2.0.tgz",
   dir = "package",
}
description = {
   summary = "Gray (canary) release router for OpenResty / nginx-lua, rules kept live in memcached",
   detailed = [[
Sends each request to the stable or the canary upstream by rules kept live in memcached
(override header or cookie, user ids, client IPs, IP ranges, a sticky percentage), answered
from a lua_shared_dict cache, counted, and driven by the `gray` CLI (npm package gray-router).
Load it with require("gray.router") from access_by_lua; see README.md.
]],
   license = "MIT",
   labels = { "openresty", "nginx", "canary" },
}
dependencies = {
   "lua >= 5.1",
   -- Debian's lua-nginx-memcached installs it as nginx.memcached; gray.store finds either name.
   "lua-resty-memcached",
   -- Comes with lua-resty-core (and so with OpenResty and Debian's libnginx-mod-http-lua).
   "lua-resty-lrucache",
}
build = {
   type = "builtin",
   modules = {
      ["gray.client_ip"] = "dist/lua/gray/client_ip.lua",
      ["gray.counters"] = "dist/lua/gray/counters.lua",
      ["gray.document"] = "dist/lua/gray/document.lua",
      ["gray.ip"] = "dist/lua/gray/ip.lua",
      ["gray.lookups"] = "dist/lua/gray/lookups.lua",
      ["gray.options"] = "dist/lua/gray/options.lua",
      ["gray.ranges"] = "dist/lua/gray/ranges.lua",
      ["gray.router"] = "dist/lua/gray/router.lua",
      ["gray.rules"] = "dist/lua/gray/rules.lua",
      ["gray.snapshot"] = "dist/lua/gray/snapshot.lua",
      ["gray.status"] = "dist/lua/gray/status.lua",
      ["gray.status_page"] = "dist/lua/gray/status_page.lua",
      ["gray.store"] = "dist/lua/gray/store.lua",
      ["gray.text"] = "dist/lua/gray/text.lua",
   },
}
