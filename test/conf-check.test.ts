/**
 * gray check's findings on confs a user might write: the options evaluated in nginx's own LuaJIT,
 * and the drop-in's parts around configure(). Runs the machine's nginx (installed on both runtimes).
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { LUA_DIR, LUA_SHIM_DIR } from "../harness/paths.ts";
import { type Finding, checkConf } from "../node-src/conf-check.ts";
import { type Pattern, renderMain, renderSite } from "../node-src/nginx-conf.ts";
import type { LuaValue } from "../node-src/lua-literal.ts";

const prefix = mkdtempSync(join(tmpdir(), "gray-check-test-"));
mkdirSync(join(prefix, "logs"));
afterAll(() => rmSync(prefix, { recursive: true, force: true }));

function conf(
  pattern: Pattern,
  options: Record<string, LuaValue> = {},
  edit: (c: string) => string = (c) => c,
): string {
  const site = renderSite({
    pattern,
    luaPaths: [LUA_DIR, LUA_SHIM_DIR],
    options,
    listen: ["127.0.0.1:1"],
    stable: ["127.0.0.1:2"],
    canary: ["127.0.0.1:3"],
  });
  const path = join(prefix, `${Math.random().toString(36).slice(2)}.conf`);
  writeFileSync(path, edit(renderMain({ flavour: "debian", http: site })));
  return path;
}

const check = (path: string) => checkConf(path, "nginx", prefix);
const messages = (findings: Finding[], level: Finding["level"]) =>
  findings.filter((f) => f.level === level).map((f) => f.message);

describe("gray check", () => {
  for (const pattern of ["upstream", "exec"] as const) {
    it(`finds nothing wrong in the drop-in (${pattern} pattern)`, () => {
      const r = check(conf(pattern));
      expect(r.findings).toEqual([]);
      expect(r.options).toEqual({
        cache_dict: "gray_cache",
        stable_location: "@client",
        canary_location: "@client_test",
        stable_upstream: "client",
        canary_upstream: "client_test",
      });
    });
  }

  it("evaluates the options as nginx does: a bad one is named", () => {
    const r = check(conf("upstream", { memcached: { timeout_ms: 0 } }));
    expect(messages(r.findings, "error")).toEqual([
      "gray.router: option memcached.timeout_ms must be an integer in 1..60000 (got number 0)",
    ]);
  });

  it("evaluates code, not only literals: os.getenv and expressions", () => {
    const path = conf("upstream", {}, (c) =>
      c.replace(
        "configure({",
        'configure({ key_prefix = (os.getenv("GRAY_CHECK_UNSET") or "p") .. ":", canary_upstream = "client" .. "_test",',
      ),
    );
    const r = check(path);
    expect(r.findings).toEqual([]);
  });

  it("names an upstream with no upstream {} block", () => {
    const r = check(conf("upstream", { canary_upstream: "app_v2" }));
    expect(messages(r.findings, "error")).toEqual([
      'no upstream app_v2 {} block: nginx would resolve "app_v2" as a host name, and that route would answer 502',
    ]);
  });

  it("refuses $gray_upstream without set, as nginx -t does", () => {
    const r = check(conf("upstream", {}, (c) => c.replace('set $gray_upstream "";', "")));
    expect(messages(r.findings, "error")[0]).toContain('unknown "gray_upstream" variable');
  });

  it("finds a route_upstream() location whose proxy_pass ignores the decision", () => {
    const r = check(
      conf("upstream", {}, (c) => c.replace("proxy_pass http://$gray_upstream;", "proxy_pass http://client;")),
    );
    expect(messages(r.findings, "error")).toEqual([
      "the location calling route_upstream() does not proxy_pass http://$gray_upstream: its decision goes nowhere",
    ]);
  });

  it("finds route() at server level, where ngx.exec would run it again", () => {
    const r = check(
      conf("exec", {}, (c) =>
        c.replace(
          /location \/ \{\s*(access_by_lua_block \{ require\("gray.router"\)\.route\(\) \})\s*\}/,
          "$1\n location / { }",
        ),
      ),
    );
    expect(messages(r.findings, "error")).toEqual([
      "route() at server level runs again in the locations it ngx.exec()s to: put it inside location / only",
    ]);
  });

  it("finds a missing named location for route()", () => {
    const r = check(conf("exec", { canary_location: "@v2" }));
    expect(messages(r.findings, "error")).toEqual(["no location @v2 in this server for route() to ngx.exec() to"]);
  });

  it("warns about a missing shared dict and log line", () => {
    const r = check(
      conf("upstream", {}, (c) =>
        c
          .replace("lua_shared_dict gray_cache 10m;", "")
          .replace('log_by_lua_block { require("gray.router").log() }', ""),
      ),
    );
    expect(messages(r.findings, "error")).toEqual([]);
    expect(messages(r.findings, "warning")).toEqual([
      "no lua_shared_dict gray_cache: the router runs uncached and keeps no counters (add: lua_shared_dict gray_cache 10m;)",
      'no log_by_lua calls require("gray.router").log(): no route counters, and gray release has nothing to judge',
    ]);
  });
});
