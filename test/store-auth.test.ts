/**
 * A locked store (issue 21): memcached with text-protocol authentication (-Y). The router logs in
 * once per new connection with memcached.auth_file, the CLI with --auth-file; a wrong password is
 * "authentication failed" in both, and the router then keeps what it has (nothing: stable).
 */
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gray } from "../harness/gray-cli.ts";
import { closeAgents } from "../harness/http.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { logProblems } from "../harness/nginx.ts";
import { RouterStack } from "../harness/stack.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { routeOf, testRuntime } from "./support.ts";

const dir = mkdtempSync(join(tmpdir(), "gray-auth-"));
chmodSync(dir, 0o755);
function credentialsFile(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  chmodSync(file, 0o644);
  return file;
}
const GOOD = credentialsFile("good", "ops:s3cret-pass\n");
const WRONG = credentialsFile("wrong", "ops:not-the-pass\n");

describe("memcached with authentication (-Y)", () => {
  let memcached: MemcachedServer;
  let router: RouterStack;
  let wrong: RouterStack;

  beforeAll(async () => {
    const runtime = await testRuntime();
    memcached = await MemcachedServer.start(runtime, { authFile: GOOD });
    const options = (file: string) => ({
      cache_ttl_ms: 200,
      memcached: { auth_file: file },
      debug_header: "X-Gray-Route",
    });
    router = await RouterStack.start({ runtime, memcached, paths: [dir], options: options(GOOD) });
    wrong = await RouterStack.start({ runtime, memcached, paths: [dir], options: options(WRONG) });
  });
  afterAll(async () => {
    await closeAgents();
    await router?.stop();
    await wrong?.stop();
    await memcached?.stop();
  });

  const env = (file?: string) => ({
    GRAY_MEMCACHED: memcached.address,
    ...(file === undefined ? {} : { GRAY_MEMCACHED_AUTH_FILE: file }),
  });

  it("end to end: the CLI logs in and writes, the router logs in and routes by it", async () => {
    const added = await gray(["add", "127.0.13.1", "--init"], env(GOOD));
    expect(added.stderr).toBe("");
    expect(added.code).toBe(0);
    // A seed-style key too: the router's per-request lookups log in as well.
    expect((await gray(["weight", "0", "--auth-file", GOOD], { GRAY_MEMCACHED: memcached.address })).code).toBe(0);
    await sleep(600);
    expect(await routeOf(router.url, { from: "127.0.13.1" })).toBe("canary");
    expect(await routeOf(router.url, { from: "127.0.13.2" })).toBe("stable");
    const status = await fetchStatus(router.statusUrl);
    expect(status.document.last_error).toBeNull();
    expect(JSON.stringify(status)).not.toContain("s3cret");
  });

  it("the CLI without credentials, or with the wrong ones: exit 1, nothing written", async () => {
    for (const file of [undefined, WRONG]) {
      const r = await gray(["add", "127.0.13.9"], env(file));
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toMatch(file === undefined ? /unauthenticated/ : /authentication failed/);
      expect(r.stderr).not.toContain("not-the-pass");
    }
    const listed = await gray(["list", "--json"], env(GOOD));
    expect(listed.stdout).not.toContain("127.0.13.9");
  });

  it("a router with the wrong password routes everyone to stable and warns 'authentication failed', never the password", async () => {
    expect(await routeOf(wrong.url, { from: "127.0.13.1" })).toBe("stable");
    await sleep(600);
    const status = await fetchStatus(wrong.statusUrl);
    expect(status.document.revision).toBeNull();
    expect(status.document.last_error).toMatch(/authentication failed as user ops/);
    const log = wrong.errorLog();
    expect(log).toContain("authentication failed");
    expect(log).not.toContain("not-the-pass");
    expect(logProblems(log).filter((l) => !/Connection reset by peer/.test(l))).toEqual([]);
  });

  it("a bad auth_file stops nginx from starting, naming the option", async () => {
    const runtime = await testRuntime();
    await expect(
      RouterStack.start({
        runtime,
        memcached,
        paths: [dir],
        options: { memcached: { auth_file: join(dir, "missing") } },
      }),
    ).rejects.toThrow(/memcached\.auth_file: cannot read/);
    const bad = credentialsFile("bad", "no colon here\n");
    await expect(
      RouterStack.start({ runtime, memcached, paths: [dir], options: { memcached: { auth_file: bad } } }),
    ).rejects.toThrow(/user:password/);
  });
});
