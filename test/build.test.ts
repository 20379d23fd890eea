/** What `npm run build` emits: Lua that reads like an OpenResty library, and the drop-in example. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LUA_DIR, ROOT } from "../harness/paths.ts";

const modules = readdirSync(join(LUA_DIR, "gray")).filter((f) => f.endsWith(".lua"));
const source = (f: string) => readFileSync(join(LUA_DIR, "gray", f), "utf8");

describe("emitted Lua", () => {
  it("has the public modules", () => {
    expect(modules).toEqual(
      expect.arrayContaining(["router.lua", "client_ip.lua", "ip.lua", "options.lua", "store.lua"]),
    );
  });

  for (const f of modules) {
    it(`${f}: no TypeScriptToLua bundle is required`, () => {
      expect(source(f)).not.toMatch(/require\("lualib_bundle"\)/);
    });
  }

  // luacheck (npm run lint) is what keeps globals out; these show its settings would catch one.
  const luacheck = (...args: string[]) =>
    spawnSync("luacheck", ["--config", join(ROOT, ".luacheckrc"), ...args], { encoding: "utf8" });
  it("passes luacheck with the project's .luacheckrc (std ngx_lua, TypeScriptToLua temporaries ignored)", () => {
    const r = luacheck("-q", LUA_DIR);
    expect(r.status, r.stdout).toBe(0);
  });
  it("luacheck would catch a global assigned inside a function, and an unused local", () => {
    const dir = mkdtempSync(join(tmpdir(), "gray-luacheck-"));
    writeFileSync(
      join(dir, "leak.lua"),
      "local function f()\n  leaked = 1\n  local unused = 2\n  local ____temp_1 = 3\nend\nreturn f\n",
    );
    const r = luacheck("--formatter", "plain", dir);
    rmSync(dir, { recursive: true, force: true });
    expect(r.status).not.toBe(0);
    expect(r.stdout).toContain("setting non-standard global variable 'leaked'");
    expect(r.stdout).toContain("unused variable 'unused'");
    expect(r.stdout).not.toContain("____temp_1");
  });

  const HOT: Record<string, string[]> = {
    "router.lua": ["ngx.var", "ngx.exec", "ngx.header"],
    "lookups.lua": ["ngx.now"],
  };
  for (const [file, names] of Object.entries(HOT)) {
    it(`${file} keeps hot ngx functions in locals`, () => {
      const lua = source(file);
      for (const name of names) expect(lua).toContain(`= ${name}\n`);
      // and calls them through the locals only
      expect(lua.replace(/^local .*= ngx\.\w+$/gm, "").replace(/--.*$/gm, "")).not.toMatch(
        new RegExp(`(${names.join("|").replace(/\./g, "\\.")})\\b`),
      );
    });
  }
});

describe("drop-in examples", () => {
  const read = (name: string) => readFileSync(join(ROOT, "dist", "nginx", name), "utf8");
  it("gray.conf holds the variable pattern's contract", () => {
    const conf = read("gray.conf");
    expect(conf).toContain(`lua_package_path "${LUA_DIR}/?.lua;;";`);
    expect(conf).toContain('require("gray.router").configure({');
    expect(conf).toContain('log_by_lua_block { require("gray.router").log() }');
    expect(conf).toContain('init_worker_by_lua_block { require("gray.router").init_worker() }');
    expect(conf).toMatch(
      /location \/ \{\s*set \$gray_upstream "";\s*access_by_lua_block \{ require\("gray.router"\).route_upstream\(\) \}[^}]*proxy_pass http:\/\/\$gray_upstream;/,
    );
    expect(conf).toMatch(/upstream client \{/);
    expect(conf).toMatch(/upstream client_test \{/);
  });
  it("gray.exec.conf holds the original recipe's contract", () => {
    const conf = read("gray.exec.conf");
    expect(conf).toContain('access_by_lua_block { require("gray.router").route() }');
    expect(conf).toMatch(/location @client \{[^}]*proxy_pass http:\/\/client;/);
    expect(conf).toMatch(/location @client_test \{[^}]*proxy_pass http:\/\/client_test;/);
  });
  it("the Debian flavour loads the lua module", () => {
    expect(read("nginx.debian.conf")).toContain("load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;");
    expect(read("nginx.openresty.conf")).not.toContain("load_module");
  });
});
