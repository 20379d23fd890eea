/**
 * `gray promote` under load, for both drop-in patterns, with two workers: from weight 100 the
 * canary's version becomes stable's in one revision, and back with --undo, without a failed
 * request and without a single answer from the old version in between (every worker holds either
 * revision, and both send everyone to the new version). No reload.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { gray } from "../harness/gray-cli.ts";
import { Load, loopbackClients } from "../harness/load.ts";
import { readRules } from "../harness/rules.ts";
import { weightOf } from "../lua-src/gray/document.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { PATTERNS } from "../node-src/nginx-conf.ts";
import { expectCleanLog, sharedMemcached, untilLoaded, useRouter } from "./support.ts";

const env = () => ({ GRAY_MEMCACHED: sharedMemcached().address });

async function cli(args: string[]): Promise<string> {
  const r = await gray(args, env());
  expect(r.stderr, args.join(" ")).toBe("");
  expect(r.code, args.join(" ")).toBe(0);
  return r.stdout.trim();
}

describe.each(PATTERNS)("gray promote, %s pattern", (pattern) => {
  const ctx = useRouter({ pattern, workers: 2, options: { cache_ttl_ms: 200 } });

  it("swaps stable and the canary live, then back, with 0 failed requests and no answer from the old version", async () => {
    const url = ctx.router.statusUrl;
    await cli(["add", "127.0.9.9"]);
    await cli(["weight", "100"]);
    await untilLoaded(ctx.router, (await readRules(sharedMemcached().address))!.revision);
    const before = await fetchStatus(url);
    expect(before.stable_target.upstream).toBe("client");
    const load = Load.start({ url: ctx.router.url, sources: loopbackClients(32, 102), durationMs: 60_000 });
    await sleep(1000);
    const fromPromote = load.now();
    const promoted = await cli(["promote", "--status-url", url]);
    expect(promoted).toMatch(
      /^promoted canary: stable is now client_test \(@client_test\), canary client \(@client\) at weight 0, 1 entry cleared, revision \d+$/,
    );
    const doc = (await readRules(sharedMemcached().address))!;
    expect(doc.stable).toEqual({ upstream: "client_test", location: "@client_test" });
    expect(doc.canaries.canary).toMatchObject({ upstream: "client", location: "@client", buckets: [] });
    expect(doc.ips).toEqual({});
    await untilLoaded(ctx.router, doc.revision);
    await sleep(1000);
    const s = await fetchStatus(url);
    expect(s.stable_target).toEqual({ upstream: "client_test", location: "@client_test" });
    expect(s.canaries.canary).toMatchObject({ weight: 0, upstream: "client", location: "@client" });
    // Everyone on the new version ("canary" is what its backend answers) before, during and after.
    expect(Object.keys(load.summary(fromPromote).routes)).toEqual(["canary"]);
    // And counted as stable now: the route, not the backend.
    const counted = s.routes.stable!.requests;
    await sleep(1100);
    expect((await fetchStatus(url)).routes.stable!.requests).toBeGreaterThan(counted);

    const fromUndo = load.now();
    const undone = await cli(["promote", "--undo", "--status-url", url]);
    expect(undone).toMatch(
      /^undone: stable is client \(@client\) again, canary client_test \(@client_test\) at weight 100 % \(nobody moved; gray weight 0 --canary canary sends them back\), revision \d+$/,
    );
    const back = (await readRules(sharedMemcached().address))!;
    expect(weightOf(back.canaries.canary!)).toBe(100);
    await untilLoaded(ctx.router, back.revision);
    await sleep(1000);
    expect(Object.keys(load.summary(fromUndo).routes)).toEqual(["canary"]);

    // More swaps back and forth, each while requests wait on their per-IP seed key: a request
    // decided under one revision and sent under the next would reach the old version.
    for (let i = 0; i < 4; i++) {
      await cli(["promote", "--status-url", url]);
      await sleep(400);
      await cli(["promote", "--undo", "--status-url", url]);
      await sleep(400);
    }
    await sleep(1000);
    expect(Object.keys(load.summary(fromPromote).routes)).toEqual(["canary"]);

    await cli(["weight", "0"]);
    await untilLoaded(ctx.router, (await readRules(sharedMemcached().address))!.revision);
    await sleep(1000);
    const fromZero = load.now();
    await sleep(1000);
    const summary = await load.stop();
    expect(Object.keys(load.summary(fromZero).routes)).toEqual(["stable"]);
    expect(summary).toMatchObject({ failed: 0, non2xx: 0 });
    expect(summary.sent).toBeGreaterThan(1000);
  }, 60_000);

  it("refuses --undo with nothing to undo, and a promote while a router does not answer (nothing written)", async () => {
    const r = await gray(["promote", "--undo", "--status-url", ctx.router.statusUrl], env());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("no promote of canary to undo");
    const revision = (await readRules(sharedMemcached().address))!.revision;
    const dead = await gray(
      ["promote", "--status-url", ctx.router.statusUrl, "--status-url", "http://127.0.0.1:1/gray/status"],
      env(),
    );
    expect(dead.code).toBe(1);
    expect(dead.stderr).toContain("nothing written: every router must answer");
    expect((await readRules(sharedMemcached().address))!.revision).toBe(revision);
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
