/**
 * Signed revisions (issue 21): twemproxy forwards no authentication, so anyone who reaches the
 * proxy can write; a router with rules_key_file adopts only revisions whose HMAC verifies under
 * the key. Everything here goes through nutcracker, as a pooled fleet would.
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
import { NutcrackerServer } from "../harness/nutcracker.ts";
import { RouterStack } from "../harness/stack.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { routeOf, testRuntime } from "./support.ts";

const dir = mkdtempSync(join(tmpdir(), "gray-key-"));
chmodSync(dir, 0o755);
function keyFile(name: string, key: string): string {
  const file = join(dir, name);
  writeFileSync(file, key + "\n");
  chmodSync(file, 0o644);
  return file;
}
const KEY = keyFile("key", "a-long-shared-rules-key-0123456789");
const OTHER = keyFile("other", "someone-elses-key-9876543210-abcd");
const TTL_MS = 200;

describe("signed rules revisions, through nutcracker", () => {
  let memcached: MemcachedServer;
  let proxy: NutcrackerServer;
  let router: RouterStack;

  beforeAll(async () => {
    const runtime = await testRuntime();
    memcached = await MemcachedServer.start(runtime);
    proxy = await NutcrackerServer.start(runtime, [memcached]);
    router = await RouterStack.start({
      runtime,
      memcached: proxy,
      paths: [dir],
      options: { cache_ttl_ms: TTL_MS, ip_keys: false, rules_key_file: KEY },
    });
  });
  afterAll(async () => {
    await closeAgents();
    await router?.stop();
    await proxy?.stop();
    await memcached?.stop();
  });

  const cli = (args: string[], key?: string) =>
    gray(args, { GRAY_MEMCACHED: proxy.address, ...(key === undefined ? {} : { GRAY_RULES_KEY_FILE: key }) });
  const revision = async () => (await fetchStatus(router.statusUrl)).document;

  it("a revision signed with the routers' key is adopted", async () => {
    const r = await cli(["add", "127.0.14.1", "--init"], KEY);
    expect(r.code, r.stderr).toBe(0);
    await routeOf(router.url, { from: "127.0.14.9" }); // starts the worker's timer
    await sleep(TTL_MS * 3);
    expect(await routeOf(router.url, { from: "127.0.14.1" })).toBe("canary");
    expect((await revision()).last_error).toBeNull();
  });

  it("an unsigned revision is refused and the last good one kept; a CLI with the key will not build on it", async () => {
    const good = (await revision()).revision;
    const r = await cli(["add", "127.0.14.2"]);
    expect(r.code, r.stderr).toBe(0);
    await sleep(TTL_MS * 3);
    const doc = await revision();
    expect(doc.revision).toBe(good);
    expect(doc.last_error).toMatch(/is refused: it is not signed/);
    expect(await routeOf(router.url, { from: "127.0.14.2" })).toBe("stable");
    const refused = await cli(["add", "127.0.14.3"], KEY);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("it is not signed");
  });

  it("a revision signed with another key (forged) is refused", async () => {
    const good = (await revision()).revision;
    const r = await cli(["add", "127.0.14.4", "--force"], OTHER);
    expect(r.code, r.stderr).toBe(0);
    await sleep(TTL_MS * 3);
    const doc = await revision();
    expect(doc.revision).toBe(good);
    expect(doc.last_error).toMatch(/signed with another key, or forged/);
    expect(await routeOf(router.url, { from: "127.0.14.4" })).toBe("stable");
    expect(await routeOf(router.url, { from: "127.0.14.1" })).toBe("canary");
  });

  it("the operator with the key takes the store back (--force), and routers follow", async () => {
    const r = await cli(["add", "127.0.14.5", "--force"], KEY);
    expect(r.code, r.stderr).toBe(0);
    await sleep(TTL_MS * 3);
    expect(await routeOf(router.url, { from: "127.0.14.5" })).toBe("canary");
    expect((await revision()).last_error).toBeNull();
  });

  it("logs warnings, never an error, and never the key", () => {
    const log = router.errorLog();
    expect(logProblems(log)).toEqual([]);
    expect(log).toContain("is refused: it is not signed");
    expect(log).not.toContain("a-long-shared-rules-key");
  });
});
