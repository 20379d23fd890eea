/**
 * `gray upgrade` on a router under load, as an operator runs it against nginx's pid file: a
 * healthy new generation takes over, a failing health check brings the old one back. Either
 * way no request fails, and the version served afterwards is checked.
 */
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { gray } from "../harness/gray-cli.ts";
import { Load, loopbackClients } from "../harness/load.ts";
import { byRelease, releaseHeader } from "../harness/release-scenarios.ts";
import { RouterStack } from "../harness/stack.ts";
import { readPid } from "../node-src/nginx-master.ts";
import { sharedMemcached, testRuntime } from "./support.ts";

const health = (status: number) => [`location = /healthz { return ${status} "health ${status}\\n"; }`];

describe("gray upgrade under load", () => {
  let router: RouterStack | undefined;
  afterEach(async () => {
    await router?.stop();
    router = undefined;
  });

  for (const [outcome, newHealth, code, served] of [
    ["the new master takes over when healthy", 200, 0, "v2"],
    ["the old master comes back when the health check fails", 503, 3, "v1"],
  ] as const) {
    it(outcome, { timeout: 60_000 }, async () => {
      router = await RouterStack.start({
        runtime: await testRuntime(),
        memcached: sharedMemcached(),
        serverExtra: [...releaseHeader("v1"), ...health(200)],
      });
      const oldPid = readPid(router.nginx.pidFile);
      // The new master reads the configuration on disk.
      router.nginx.writeConf(router.render(undefined, { serverExtra: [...releaseHeader("v2"), ...health(newHealth)] }));
      const load = Load.start({
        url: router.url,
        sources: loopbackClients(32, 104),
        durationMs: 40_000,
        label: byRelease,
      });
      await sleep(300);
      const r = await gray(["upgrade", "--pid-file", router.nginx.pidFile, "--health-url", `${router.url}/healthz`]);
      const after = load.now();
      await sleep(500);
      const summary = await load.stop();

      expect(r.code, r.stderr).toBe(code);
      expect(r.stdout).toMatch(/^USR2: new master \d+ is serving beside the old master \d+\nWINCH: /);
      expect(Object.keys(load.summary(after).routes)).toEqual([served]);
      expect(summary, JSON.stringify(summary.errors)).toMatchObject({ failed: 0, non2xx: 0 });
      expect(existsSync(`${router.nginx.pidFile}.oldbin`)).toBe(false);
      if (code === 0) {
        expect(r.stdout).toContain("health check: ");
        expect(readPid(router.nginx.pidFile)).not.toBe(oldPid);
      } else {
        expect(r.stderr).toMatch(
          /^gray upgrade: rolled back to nginx master \d+: http:\S+\/healthz answered 503 \(probe 1 of 5\)\n$/,
        );
        expect(readPid(router.nginx.pidFile)).toBe(oldPid);
      }
      expect(router.nginx.masters()).toEqual([readPid(router.nginx.pidFile)]);
    });
  }

  it("exits 1 naming the pid file when no master runs there", async () => {
    const r = await gray(["upgrade", "--pid-file", "/nonexistent/nginx.pid"]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe("gray upgrade: cannot read an nginx master pid from /nonexistent/nginx.pid");
  });
});
