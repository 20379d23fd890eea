/**
 * `gray reload` and `gray check` against a running router, as an operator runs them before and
 * instead of `nginx -s reload`; `gray upgrade` failing fast on a master that cannot re-execute
 * itself; `gray paths`.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gray } from "../harness/gray-cli.ts";
import { closeAgents } from "../harness/http.ts";
import { freePort } from "../harness/net.ts";
import { LUA_DIR } from "../harness/paths.ts";
import { RouterStack, backend } from "../harness/stack.ts";
import { isAlive, readPid } from "../node-src/nginx-master.ts";
import { renderMain } from "../node-src/nginx-conf.ts";
import { sharedMemcached, testRuntime, untilRoute } from "./support.ts";

describe("gray reload", () => {
  let router: RouterStack;
  beforeAll(async () => {
    router = await RouterStack.start({
      runtime: await testRuntime(),
      memcached: sharedMemcached(),
      pattern: "upstream",
      options: { key_prefix: "old:" },
    });
  });
  afterAll(async () => {
    await closeAgents();
    await router?.stop();
  });
  const reload = () => gray(["reload", "--pid-file", router.nginx.pidFile]);
  // render() keeps the options it was last given: every conf below names its own.
  const good = { key_prefix: "new:" };

  it("reports the new workers taking a good configuration", async () => {
    router.nginx.writeConf(router.render(good));
    const r = await reload();
    expect(r.stderr).toBe("");
    expect(r.stdout.trim()).toBe("reloaded: the new workers took the configuration");
    expect(r.code).toBe(0);
  });

  it("exits 1 with the master's reason when it keeps the old configuration (nginx -s reload would exit 0)", async () => {
    router.nginx.writeConf(router.render({ key_prefix: "newer:", memcached: { port: 0 } }));
    const r = await reload();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("not reloaded, the old configuration keeps serving");
    expect(r.stderr).toContain("gray.router: option memcached.port must be an integer in 1..65535");
    // The running configuration is the one the good reload installed.
    const added = await gray([
      "add",
      "127.0.7.1",
      "--prefix",
      "new:",
      "--init",
      "--memcached",
      sharedMemcached().address,
    ]);
    expect(added.code, added.stderr).toBe(0);
    await closeAgents();
    // Routed by the prefix of the running configuration, once its workers load the new revision.
    await untilRoute(router.url, "127.0.7.1", "canary", 3000);
  });

  it("exits 1 with nginx -t's words on a syntax error, and signals nothing", async () => {
    const log = router.errorLog().length;
    router.nginx.writeConf(router.render(good) + "\nthis is not nginx;\n");
    const r = await reload();
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unknown directive "this"');
    expect(router.errorLog().slice(log)).not.toContain("reconfiguring");
    router.nginx.writeConf(router.render(good));
  });

  it("gray check finds the bad option before any reload", async () => {
    router.nginx.writeConf(router.render({ key_prefix: "x y" }));
    const r = await gray([
      "check",
      join(router.nginx.prefix, "conf", "nginx.conf"),
      "--nginx-prefix",
      router.nginx.prefix,
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("error: ");
    expect(r.stderr).toContain("gray.router: option key_prefix must be");
    router.nginx.writeConf(router.render(good));
    const ok = await gray([
      "check",
      join(router.nginx.prefix, "conf", "nginx.conf"),
      "--nginx-prefix",
      router.nginx.prefix,
    ]);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
  });
});

describe('gray upgrade on a master started as plain "nginx"', () => {
  const prefix = mkdtempSync(join(tmpdir(), "gray-relative-"));
  afterAll(() => {
    const pid = readPid(join(prefix, "logs", "nginx.pid"));
    if (pid !== undefined && isAlive(pid)) process.kill(pid, "SIGQUIT");
    rmSync(prefix, { recursive: true, force: true });
  });

  it("fails at once, saying why, and sends no signal", async () => {
    mkdirSync(join(prefix, "logs"));
    mkdirSync(join(prefix, "conf"));
    const port = await freePort();
    writeFileSync(join(prefix, "conf", "nginx.conf"), renderMain({ flavour: "debian", http: backend("v1", port) }));
    // As an operator types it: found on PATH, so argv[0] is "nginx", which execve() cannot re-run.
    const started = spawnSync("nginx", ["-p", prefix, "-c", "conf/nginx.conf", "-e", "logs/error.log"], {
      cwd: "/",
      encoding: "utf8",
    });
    expect(started.status, started.stderr).toBe(0);
    const pidFile = join(prefix, "logs", "nginx.pid");
    const pid = readPid(pidFile)!;
    const t0 = Date.now();
    const r = await gray(["upgrade", "--pid-file", pidFile]);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `nginx master ${pid} cannot re-execute itself on USR2: it was started as "nginx", not by its absolute path`,
    );
    expect(readPid(`${pidFile}.oldbin`)).toBeUndefined();
    expect(readPid(pidFile)).toBe(pid);
  });
});

describe("gray paths", () => {
  it("prints the Lua directory and the lua_package_path line", async () => {
    const r = await gray(["paths", "--json"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      lua: LUA_DIR,
      examples: join(LUA_DIR, "..", "nginx"),
      lua_package_path: `lua_package_path "${LUA_DIR}/?.lua;;";`,
    });
  });
});
