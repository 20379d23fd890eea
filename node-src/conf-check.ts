/**
 * What `gray check` finds in an nginx conf before a reload: the router's options as nginx itself
 * evaluates them (init_by_lua runs in nginx's own LuaJIT, so variables, os.getenv and require
 * work as they will in the real start), and the parts of the drop-in around configure() that it
 * cannot see: the shared dict, the log line, where the access handler sits, $gray_upstream, and
 * an upstream {} block or named location for every target.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Directive, findAll, parseConf } from "./conf-tree.ts";

export interface Finding {
  level: "error" | "warning";
  /** file:line in the conf, when the finding is about one place. */
  where?: string;
  message: string;
}

/** The parsed options check() needs, as the router's own parseOptions() filled them in. */
export interface CheckedOptions {
  cache_dict: string | false;
  stable_location: string;
  canary_location: string;
  stable_upstream: string;
  canary_upstream: string;
}

export interface CheckResult {
  findings: Finding[];
  /** undefined when the options could not be evaluated (the findings say why). */
  options: CheckedOptions | undefined;
}

const at = (d: Directive) => (d.file ? `${d.file}:${d.line}` : `line ${d.line}`);
const mentionsRouter = (d: Directive) => (d.lua ?? d.args.join(" ")).includes("gray.router");
const INIT = ["init_by_lua_block", "init_by_lua", "init_by_lua_file"];

/** Runs nginx (or openresty) with these arguments. */
function run(nginx: string, args: string[]): { status: number; stdout: string; output: string } {
  const r = spawnSync(nginx, args, { encoding: "utf8", timeout: 20000 });
  if (r.error) throw new Error(`cannot run ${nginx}: ${r.error.message}`);
  return { status: r.status ?? 1, stdout: r.stdout, output: `${r.stdout}${r.stderr}` };
}

/** The http-level init code as one Lua chunk, whichever of the three directives holds it. */
function initChunk(init: Directive): string {
  if (init.name === "init_by_lua_block") return init.lua ?? "";
  if (init.name === "init_by_lua") return init.args[0] ?? "";
  return `dofile(${JSON.stringify(init.args[0] ?? "")})`;
}

/**
 * Evaluates the conf's init code in nginx's own LuaJIT, in a throwaway nginx with only the http
 * directives the code can depend on (module loading, Lua paths, shared dicts) and no server: a
 * bad option fails its start with the router's message; good ones are written out, and the
 * process exits from init, before it forks or listens.
 */
function evaluateOptions(
  nginx: string,
  tree: Directive[],
  init: Directive,
): { options?: CheckedOptions; error?: string } {
  const dir = mkdtempSync(join(tmpdir(), "gray-check-"));
  try {
    const main = tree
      .filter((d) => d.name === "load_module" || d.name === "env")
      .map((d) => `${d.name} ${d.args.join(" ")};`);
    const http = tree.find((d) => d.name === "http")?.block ?? [];
    const keep = http
      .filter((d) => ["lua_package_path", "lua_package_cpath", "lua_shared_dict"].includes(d.name))
      .map((d) => `${d.name} ${d.args.map((a) => JSON.stringify(a)).join(" ")};`);
    const out = join(dir, "options");
    const lua = [
      'local router = require("gray.router")',
      "local configure, given = router.configure, nil",
      "router.configure = function(o) configure(o); given = o end",
      initChunk(init),
      'local parsed = require("gray.options").parseOptions(given)',
      `local f = assert(io.open(${JSON.stringify(out)}, "w"))`,
      'for _, k in ipairs({ "stable_location", "canary_location", "stable_upstream", "canary_upstream" }) do f:write(k, "=", parsed[k], "\\n") end',
      'f:write("cache_dict=", parsed.cache == nil and "false" or parsed.cache.dict, "\\n")',
      "f:close()",
      "os.exit(0)",
    ];
    const conf = [
      ...main,
      "daemon off;",
      "master_process off;",
      `error_log ${join(dir, "error.log")} notice;`,
      `pid ${join(dir, "nginx.pid")};`,
      "events {}",
      "http {",
      ...keep,
      `init_by_lua_block {\n${lua.join("\n")}\n}`,
      "}",
      "",
    ].join("\n");
    writeFileSync(join(dir, "nginx.conf"), conf);
    const r = run(nginx, ["-p", dir, "-c", join(dir, "nginx.conf")]);
    if (r.status !== 0) {
      const reason = /gray\.router: [^\n]*/.exec(r.output)?.[0] ?? r.output.trim().split("\n").slice(-3).join(" ");
      return { error: reason };
    }
    const fields = Object.fromEntries(
      readFileSync(out, "utf8")
        .trim()
        .split("\n")
        .map((l) => l.split("=", 2) as [string, string]),
    );
    return {
      options: {
        cache_dict: fields.cache_dict === "false" ? false : fields.cache_dict!,
        stable_location: fields.stable_location!,
        canary_location: fields.canary_location!,
        stable_upstream: fields.stable_upstream!,
        canary_upstream: fields.canary_upstream!,
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Routed {
  handler: Directive;
  /** The block the handler sits in (a location's, a server's, http's) and that block's owner. */
  owner: Directive | undefined;
  server: Directive | undefined;
}

/** Access handlers calling the router, with the block each sits in. */
function routedHandlers(tree: Directive[]): Routed[] {
  const out: Routed[] = [];
  const walk = (list: Directive[], owner: Directive | undefined, server: Directive | undefined) => {
    for (const d of list) {
      if (d.name.startsWith("access_by_lua") && mentionsRouter(d)) out.push({ handler: d, owner, server });
      if (d.block) walk(d.block, d, d.name === "server" ? d : server);
    }
  };
  walk(tree, undefined, undefined);
  return out;
}

const usesUpstream = (r: Routed) => (r.handler.lua ?? r.handler.args.join(" ")).includes("route_upstream(");

/** Checks the conf text (as `nginx -T` prints it); evaluates the options with `nginx`. */
export function checkConfText(text: string, nginx: string): CheckResult {
  const tree = parseConf(text);
  const findings: Finding[] = [];
  const inits = INIT.flatMap((n) => findAll(tree, n)).filter(mentionsRouter);
  let options: CheckedOptions | undefined;
  if (inits.length === 0) {
    findings.push({
      level: "warning",
      message: 'no init_by_lua calls require("gray.router").configure(...): the router runs with its defaults',
    });
  } else {
    const evaluated = evaluateOptions(nginx, tree, inits[0]!);
    if (evaluated.error !== undefined)
      findings.push({ level: "error", where: at(inits[0]!), message: evaluated.error });
    options = evaluated.options;
  }

  const routed = routedHandlers(tree);
  if (routed.length === 0)
    findings.push({ level: "warning", message: "no access_by_lua calls gray.router's route() or route_upstream()" });
  const dicts = new Set(findAll(tree, "lua_shared_dict").map((d) => d.args[0]));
  if (options && options.cache_dict !== false && !dicts.has(options.cache_dict)) {
    findings.push({
      level: "warning",
      message: `no lua_shared_dict ${options.cache_dict}: the router runs uncached and keeps no counters (add: lua_shared_dict ${options.cache_dict} 10m;)`,
    });
  }
  const upstreams = new Set(findAll(tree, "upstream").map((d) => d.args[0]));
  const declared = findAll(tree, "set").some((d) => d.args[0] === "$gray_upstream");
  const logged = findAll(tree, "log_by_lua_block").concat(findAll(tree, "log_by_lua")).some(mentionsRouter);
  if (routed.length > 0 && !logged) {
    findings.push({
      level: "warning",
      message:
        'no log_by_lua calls require("gray.router").log(): no route counters, and gray release has nothing to judge',
    });
  }
  for (const r of routed) {
    if (usesUpstream(r)) {
      const proxies = (r.owner?.block ?? []).filter((d) => d.name === "proxy_pass");
      if (!declared)
        findings.push({
          level: "error",
          where: at(r.handler),
          message: 'route_upstream() needs set $gray_upstream ""; in the location that calls it',
        });
      if (!proxies.some((d) => d.args.join(" ").includes("$gray_upstream"))) {
        findings.push({
          level: "error",
          where: at(r.handler),
          message:
            "the location calling route_upstream() does not proxy_pass http://$gray_upstream: its decision goes nowhere",
        });
      }
      for (const name of options ? [options.stable_upstream, options.canary_upstream] : []) {
        if (!upstreams.has(name))
          findings.push({
            level: "error",
            where: at(r.handler),
            message: `no upstream ${name} {} block: nginx would resolve "${name}" as a host name, and that route would answer 502`,
          });
      }
    } else {
      if (r.owner?.name !== "location") {
        findings.push({
          level: "error",
          where: at(r.handler),
          message: `route() at ${r.owner?.name ?? "http"} level runs again in the locations it ngx.exec()s to: put it inside location / only`,
        });
      }
      const named = new Set(findAll(r.server?.block ?? [], "location").map((d) => d.args[d.args.length - 1]));
      for (const target of options ? [options.stable_location, options.canary_location] : []) {
        if (target.startsWith("@") && !named.has(target))
          findings.push({
            level: "error",
            where: at(r.handler),
            message: `no location ${target} in this server for route() to ngx.exec() to`,
          });
      }
    }
  }
  return { findings, options };
}

/** `nginx -t` (the syntax), then `nginx -T` (the whole conf, includes expanded), then the router's checks. */
export function checkConf(confPath: string, nginx: string, prefix?: string): CheckResult {
  const base = [...(prefix ? ["-p", prefix] : []), "-c", confPath];
  const syntax = run(nginx, ["-q", "-t", ...base]);
  if (syntax.status !== 0)
    return { findings: [{ level: "error", message: `nginx -t: ${syntax.output.trim()}` }], options: undefined };
  const dump = run(nginx, ["-T", ...base]);
  return checkConfText(dump.stdout, nginx);
}
