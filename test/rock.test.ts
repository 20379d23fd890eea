/**
 * The Lua as OpenResty users install it: the rockspec and OPM's dist.ini describe exactly what
 * `npm run build` emits, and a router runs from a LuaRocks tree made by `luarocks make` (no
 * dist/lua and no harness shim on its path: Debian's nginx.memcached is found by gray.store).
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagStore } from "../harness/flags.ts";
import { closeAgents } from "../harness/http.ts";
import { freePort } from "../harness/net.ts";
import { NginxServer } from "../harness/nginx.ts";
import { LUA_DIR, ROOT } from "../harness/paths.ts";
import { backend } from "../harness/stack.ts";
import { renderMain, renderSite } from "../node-src/nginx-conf.ts";
import { logProblems } from "../harness/nginx.ts";
import { routeOf, sharedMemcached, testRuntime } from "./support.ts";

const VERSION = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
const ROCKSPEC = `gray-router-${VERSION}-1.rockspec`;

/** What the build emits, as module names: gray/router.lua → gray.router. */
const builtModules = readdirSync(join(LUA_DIR, "gray"))
  .filter((f) => f.endsWith(".lua"))
  .map((f) => `gray.${f.slice(0, -".lua".length)}`)
  .sort();

/** The rockspec as LuaRocks reads it: evaluated by Lua 5.1 (LuaRocks' own interpreter on Debian), not pattern-matched. */
function loadRockspec(): {
  package: string;
  version: string;
  license: string;
  dependencies: string[];
  modules: Record<string, string>;
} {
  const lua = `
    local env = {}
    local chunk = assert(loadfile(arg[1]))
    setfenv(chunk, env)
    chunk()
    print("package\\t" .. env.package)
    print("version\\t" .. env.version)
    print("license\\t" .. env.description.license)
    for _, d in ipairs(env.dependencies) do print("dependency\\t" .. d) end
    for name, file in pairs(env.build.modules) do print("module\\t" .. name .. "\\t" .. file) end
  `;
  const out = execFileSync("lua5.1", ["-e", lua.replace(/arg\[1\]/, JSON.stringify(join(ROOT, ROCKSPEC)))], {
    encoding: "utf8",
  });
  const spec = {
    package: "",
    version: "",
    license: "",
    dependencies: [] as string[],
    modules: {} as Record<string, string>,
  };
  for (const line of out.trim().split("\n")) {
    const [kind, a = "", b = ""] = line.split("\t");
    if (kind === "package") spec.package = a;
    else if (kind === "version") spec.version = a;
    else if (kind === "license") spec.license = a;
    else if (kind === "dependency") spec.dependencies.push(a);
    else if (kind === "module") spec.modules[a] = b;
  }
  return spec;
}

describe("rockspec", () => {
  const spec = loadRockspec();

  it("is named and versioned after package.json", () => {
    expect(spec.package).toBe("gray-router");
    expect(spec.version).toBe(`${VERSION}-1`);
    expect(spec.license).toBe("MIT");
  });

  it("installs every module the build emits, from dist/lua, and nothing else", () => {
    expect(Object.keys(spec.modules).sort()).toEqual(builtModules);
    for (const [name, file] of Object.entries(spec.modules))
      expect(file).toBe(`dist/lua/${name.replace(/\./g, "/")}.lua`);
  });

  it("depends on lua-resty-memcached and lua-resty-lrucache", () => {
    expect(spec.dependencies.map((d) => d.split(/\s/)[0])).toEqual(
      expect.arrayContaining(["lua-resty-memcached", "lua-resty-lrucache"]),
    );
  });

  it("passes luarocks lint", () => {
    execFileSync("luarocks", ["lint", ROCKSPEC], { cwd: ROOT, stdio: "pipe" });
  });
});

/** dist.ini as opm reads it: key = value lines in a default section, # and ; comments. */
function readDistIni(): Map<string, string> {
  const keys = new Map<string, string>();
  for (const line of readFileSync(join(ROOT, "dist.ini"), "utf8").split("\n")) {
    if (/^\s*$/.test(line) || /^\s*[#;]/.test(line)) continue;
    const m = /^\s*(\w+)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m) throw new Error(`dist.ini: not a key = value line: ${line}`);
    expect(keys.has(m[1]!), `duplicate key ${m[1]}`).toBe(false);
    keys.set(m[1]!, m[2]!);
  }
  return keys;
}

// The fields and the rules opm's `build` applies to them (openresty/opm, bin/opm); no opm runs here.
describe("dist.ini (OPM)", () => {
  const ini = readDistIni();
  const field = (k: string) => ini.get(k) ?? "";

  it("has only the keys opm knows, and the ones it requires", () => {
    const known = [
      "name",
      "abstract",
      "author",
      "is_original",
      "license",
      "version",
      "lib_dir",
      "doc_dir",
      "main_module",
      "repo_link",
      "requires",
      "exclude_files",
    ];
    expect([...ini.keys()].filter((k) => !known.includes(k))).toEqual([]);
    for (const k of ["name", "abstract", "author", "is_original", "license", "repo_link"])
      expect(field(k), k).not.toBe("");
  });

  it("names the package, its licence and version as package.json does", () => {
    expect(field("name")).toMatch(/^[-\w]{3,}$/);
    expect(field("name")).not.toMatch(/^(nginx|luajit|resty|openresty|opm)$/i);
    expect(field("is_original")).toMatch(/^(yes|no)$/);
    expect(field("license")).toBe("mit");
    expect(field("version")).toBe(VERSION);
  });

  it("packs the build's Lua: lib_dir holds every gray module, main_module is the router", () => {
    for (const k of ["lib_dir", "doc_dir", "main_module"]) {
      expect(isAbsolute(field(k)) || field(k).includes(".."), k).toBe(false);
    }
    expect(field("lib_dir")).toBe("dist/lua");
    for (const m of builtModules)
      expect(existsSync(join(ROOT, field("lib_dir"), `${m.replace(/\./g, "/")}.lua`)), m).toBe(true);
    expect(field("main_module")).toBe("dist/lua/gray/router.lua");
  });

  it("requires ngx_lua, openresty/lua-resty-memcached and openresty/lua-resty-lrucache, in opm's dependency syntax", () => {
    const deps = field("requires").split(/\s*,\s*/);
    for (const d of deps) expect(d).toMatch(/^[-/\w]+(\s*[^\w\s]+\s*\w\S*)?$/);
    expect(deps.map((d) => d.split(/\s/)[0])).toEqual(
      expect.arrayContaining(["ngx_http_lua", "openresty/lua-resty-memcached", "openresty/lua-resty-lrucache"]),
    );
  });

  it("links a repository whose project matches the name", () => {
    const m = /^https?:\/\/github\.com\/([^/\s]+)\/([^/\s]+)$/.exec(field("repo_link"));
    expect(m?.[2]).toBe(field("name"));
  });

  // opm takes the first `_VERSION = …` / `version = …` in main_module and refuses a build whose version
  // differs from dist.ini's. router.lua has none before its Prometheus content type ("version=0.0.4"), so opm
  // would read 0.0.4 without the `_VERSION` at the top of lua-src/gray/router.ts.
  it("main_module's first version assignment is dist.ini's version (what opm reads)", () => {
    const lua = readFileSync(join(ROOT, field("main_module")), "utf8");
    let found: string | undefined;
    for (const line of lua.split("\n")) {
      const m = /\b(?:_?VERSION|version)\s*=\s*(\S+)/.exec(line);
      const v = m?.[1]?.replace(/[;,'"{}()<>]|\[=*\[|\]=*\]|\s+$/g, "");
      if (v !== undefined && /\d/.test(v)) {
        found = v;
        break;
      }
    }
    expect(found).toBe(VERSION);
  });
});

describe("a router running from a LuaRocks tree (luarocks make --deps-mode=none)", () => {
  let tree: string;
  let nginx: NginxServer | undefined;
  let flags: FlagStore;
  let url: string;

  beforeAll(async () => {
    tree = mkdtempSync(join(tmpdir(), "gray-rocktree-"));
    // nginx's workers run as nobody when the master is root.
    chmodSync(tree, 0o755);
    execFileSync("luarocks", ["make", "--tree", tree, "--deps-mode=none", ROCKSPEC], { cwd: ROOT, stdio: "pipe" });
    const luaDir = join(tree, "share", "lua", "5.1");
    const runtime = await testRuntime();
    const memcached = sharedMemcached();
    const ports = { router: await freePort(), stable: await freePort(), canary: await freePort() };
    const site = renderSite({
      luaPaths: [luaDir],
      options: { memcached: { host: memcached.host, port: memcached.port } },
      listen: [`127.0.0.1:${ports.router}`],
      stable: [`127.0.0.1:${ports.stable}`],
      canary: [`127.0.0.1:${ports.canary}`],
    });
    const conf = renderMain({
      flavour: runtime.flavour,
      http: [...site, "", ...backend("stable", ports.stable), ...backend("canary", ports.canary)],
    });
    expect(conf).not.toContain(LUA_DIR);
    nginx = NginxServer.prepare(conf, ports.router);
    await nginx.start(runtime, [luaDir]);
    url = nginx.url;
    flags = new FlagStore(memcached.address);
    await flags.flush();
  });

  afterAll(async () => {
    flags?.close();
    await closeAgents();
    await nginx?.stop();
    rmSync(tree, { recursive: true, force: true });
  });

  it("installed the gray modules into share/lua/5.1", () => {
    const installed = readdirSync(join(tree, "share", "lua", "5.1", "gray")).map(
      (f) => `gray.${f.replace(/\.lua$/, "")}`,
    );
    expect(installed.sort()).toEqual(builtModules);
  });

  it("routes a flagged client to canary and the others to stable", async () => {
    await flags.set("127.0.0.41");
    for (const run of ["cold", "warm"]) {
      expect(await routeOf(url, { from: "127.0.0.41" }), run).toBe("canary");
      expect(await routeOf(url, { from: "127.0.0.42" }), run).toBe("stable");
    }
  });

  it("leaves error.log clean", () => {
    expect(logProblems(nginx?.errorLog() ?? "")).toEqual([]);
  });
});
