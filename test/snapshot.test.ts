/**
 * The rules document in the router (issue 16): answered from memory, loaded in the background,
 * never fewer rules than the operator set — through a flush, a store killed and restarted, a torn
 * or oversized write, a missing chunk, a reload and a cold start. All of it twice: on an open
 * memcached, and on one locked with -Y (credentials) and -Z (TLS), the routers, the CLI and the
 * test's own clients logging in and verifying its certificate (issue 21).
 */
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  DEFAULT_CANARY,
  chunkKey,
  copyKeys,
  formatPointer,
  parsePointer,
  pointerKey,
} from "../lua-src/gray/document.ts";
import { gray } from "../harness/gray-cli.ts";
import { closeAgents, get } from "../harness/http.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { logProblems } from "../harness/nginx.ts";
import { clearRules, flagIps, setRanges, setWeight } from "../harness/rules.ts";
import { RouterStack } from "../harness/stack.ts";
import { CHECK_KEYS } from "../lua-src/gray/status.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { AdminStore, withStore } from "../node-src/cli/store.ts";
import { PATTERNS } from "../node-src/nginx-conf.ts";
import { flag } from "../node-src/rules/edit.ts";
import { encodeDocument } from "../node-src/rules/format.ts";
import { readCurrent } from "../node-src/rules/revisions.ts";
import { type StoreAccess, testRuntime, useOwnStore, useStoreAccess } from "./support.ts";

const TTL_MS = 300;

/** The backend that answered ("stable", "canary", or another canary's name). */
async function served(url: string, from: string, fresh = false): Promise<string> {
  const reply = await get(url, { from, fresh });
  expect(reply.status, `status for ${from}`).toBe(200);
  return reply.body.trim();
}

async function until(what: string, withinMs: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > withinMs) throw new Error(`${what}: not within ${withinMs} ms`);
    await sleep(20);
  }
  return Date.now() - started;
}

/** Each of these clients, on a new connection (so both workers answer some), gets `route`. */
async function allServed(url: string, clients: string[], route: string): Promise<boolean> {
  const got = await Promise.all(clients.map((c) => served(url, c, true)));
  return got.every((r) => r === route);
}

/**
 * The client is routed `route` by a worker, and then by every worker: each checks the store (or
 * the shared dict's copy another worker saved) every TTL_MS.
 */
async function loadedEverywhere(url: string, client: string, route: string): Promise<void> {
  await until("loaded", TTL_MS + 1000, () => allServed(url, [client], route));
  await sleep(TTL_MS + 100);
}

/**
 * A memcached of the block's own, and the router a test starts on it itself (a cold start), kept
 * in `router` to be stopped after the block with the store.
 */
function useColdStarts(locked: boolean) {
  const ctx = { access: useStoreAccess(locked) } as {
    access: StoreAccess;
    memcached: MemcachedServer;
    router: RouterStack | undefined;
  };
  beforeAll(async () => {
    ctx.memcached = await MemcachedServer.start(await testRuntime(), ctx.access.server);
  });
  afterAll(async () => {
    await closeAgents();
    await ctx.router?.stop();
    await ctx.memcached?.stop();
  });
  return ctx;
}

const clients = (net: string, n: number) => Array.from({ length: n }, (_, i) => `${net}.${i + 1}`);

describe.each([
  ["open", false],
  ["locked (-Y credentials, -Z TLS)", true],
])("%s store", (_store, locked) => {
  describe("the rules document in the router", () => {
    const ctx = useOwnStore({
      workers: 2,
      reuseport: true,
      canaries: ["beta"],
      options: { cache_ttl_ms: TTL_MS, ip_keys: false, max_rules_bytes: 200000 },
      locked,
    });
    beforeEach(async () => {
      await ctx.memcached.startAgain();
      await clearRules(ctx.memcached.address);
      await sleep(TTL_MS + 300);
    });

    it(`is ${locked ? "locked: a plain connection, or TLS without credentials, is refused" : "open: a plain connection is answered"}`, async () => {
      const plain = new AdminStore(ctx.memcached.address, { auth: undefined, tls: undefined });
      const noLogin = new AdminStore(ctx.memcached.address, { auth: undefined, tls: ctx.access.client.tls });
      try {
        if (!locked) {
          expect(await plain.version()).toMatch(/^\d+\./);
          return;
        }
        // memcached -Z takes the plain request for a failed handshake and closes; -Y refuses any command before the login.
        await expect(plain.version()).rejects.toThrow(/closed the connection without answering/);
        await expect(noLogin.version()).rejects.toThrow(/unauthenticated/);
        await expect(withStore(ctx.memcached.address, (s) => s.version())).resolves.toMatch(/^\d+\./);
      } finally {
        plain.close();
        noLogin.close();
      }
    });

    it("a change reaches every worker within cache_ttl_ms + 1 s", async () => {
      const group = clients("127.0.9", 30);
      expect(await allServed(ctx.router.url, group, "stable")).toBe(true);
      await setRanges(ctx.memcached.address, "", ["127.0.9.0/24"]);
      const took = await until("every worker routes the new range", TTL_MS + 1000, () =>
        allServed(ctx.router.url, group, "canary"),
      );
      expect(took).toBeLessThanOrEqual(TTL_MS + 1000);
    });

    it("two canaries: each client goes to the canary owning its bucket, counted per canary", async () => {
      await setWeight(ctx.memcached.address, "", 30);
      await setWeight(ctx.memcached.address, "", 30, "beta");
      await flagIps(ctx.memcached.address, "", ["127.0.8.200"], { canary: "beta" });
      await sleep(TTL_MS + 500);
      const before = await fetchStatus(ctx.router.statusUrl);
      const group = clients("127.0.8", 150);
      const got = await Promise.all(group.map((c) => served(ctx.router.url, c)));
      const count = (r: string) => got.filter((g) => g === r).length;
      // 150 clients, 30 % each: comfortably between 15 and 75 for either canary.
      expect(count("canary")).toBeGreaterThan(15);
      expect(count("beta")).toBeGreaterThan(15);
      expect(count("stable")).toBeGreaterThan(15);
      expect(await served(ctx.router.url, "127.0.8.200")).toBe("beta");
      await sleep(1100);
      const after = await fetchStatus(ctx.router.statusUrl);
      expect(after.canaries.beta!.weight).toBe(30);
      expect(after.canaries.canary!.weight).toBe(30);
      expect(after.routes.beta!.requests - (before.routes.beta?.requests ?? 0)).toBe(count("beta") + 1);
      // Raising beta keeps every client already in it, and moves none from canary.
      await setWeight(ctx.memcached.address, "", 50, "beta");
      await sleep(TTL_MS + 500);
      const again = await Promise.all(group.map((c) => served(ctx.router.url, c)));
      group.forEach((c, i) => {
        if (got[i] === "beta" || got[i] === "canary") expect(again[i], c).toBe(got[i]);
      });
    });

    it("after a flush, routers keep their revision, write it back, and the next edit builds on it", async () => {
      await flagIps(ctx.memcached.address, "", ["127.0.7.1", "127.0.7.2"]);
      await loadedEverywhere(ctx.router.url, "127.0.7.1", "canary");
      const { doc: written } = (await withStore(ctx.memcached.address, (s) => readCurrent(s, "")))!;
      await ctx.flags.flush();
      // Routing never falters while the document is gone.
      for (let i = 0; i < 20; i++) {
        expect(await served(ctx.router.url, "127.0.7.1", true)).toBe("canary");
        await sleep(20);
      }
      await until("the pointer written back", 3000, async () => (await ctx.flags.get(pointerKey(""))) !== undefined);
      const restored = (await withStore(ctx.memcached.address, (s) => readCurrent(s, "")))!;
      expect(restored.doc.revision).toBe(written.revision);
      const added = await gray(["add", "127.0.7.3"], ctx.cliEnv);
      expect(added.code, added.stderr).toBe(0);
      const after = (await withStore(ctx.memcached.address, (s) => readCurrent(s, "")))!;
      expect(Object.keys(after.doc.ips).sort()).toEqual(["127.0.7.1", "127.0.7.2", "127.0.7.3"]);
      expect(ctx.router.errorLog()).toContain("gray:rules is gone from memcached");
    });

    it("a store killed mid-run and restarted empty: no flagged client ever served stable, the revision comes back", async () => {
      await flagIps(ctx.memcached.address, "", ["127.0.6.1"]);
      await loadedEverywhere(ctx.router.url, "127.0.6.1", "canary");
      const routes: string[] = [];
      let running = true;
      const probe = (async () => {
        while (running) {
          routes.push(await served(ctx.router.url, "127.0.6.1", true));
          await sleep(10);
        }
      })();
      await sleep(200);
      await ctx.memcached.kill();
      await sleep(TTL_MS * 3);
      const down = await fetchStatus(ctx.router.statusUrl);
      expect(down.document.last_error).toMatch(/memcached/);
      expect(down.document.revision).not.toBeNull();
      await ctx.memcached.startAgain();
      await until("the pointer written back", 3000, async () => (await ctx.flags.get(pointerKey(""))) !== undefined);
      await sleep(200);
      running = false;
      await probe;
      expect(routes.length).toBeGreaterThan(20);
      expect(routes.filter((r) => r !== "canary")).toEqual([]);
      await until("the store's failure cleared from /gray/status", 2000, async () => {
        return (await fetchStatus(ctx.router.statusUrl)).document.last_error === null;
      });
    });

    it("a torn write (chunks but no pointer) changes nothing; a pointer to a missing chunk is refused and reported", async () => {
      await flagIps(ctx.memcached.address, "", ["127.0.5.1"]);
      await loadedEverywhere(ctx.router.url, "127.0.5.1", "canary");
      const current = (await withStore(ctx.memcached.address, (s) => readCurrent(s, "")))!;
      const next = structuredClone(current.doc);
      next.revision = current.doc.revision + 1;
      flag(next, "ip", "127.0.5.2", DEFAULT_CANARY, 0);
      const encoded = encodeDocument(next);
      // Torn: the chunks are written, the writer dies before the pointer.
      for (const [i, chunk] of encoded.chunks.entries()) await ctx.flags.set(chunkKey("", encoded.pointer, i), chunk);
      await sleep(TTL_MS + 300);
      expect(await served(ctx.router.url, "127.0.5.2")).toBe("stable");
      // Now a pointer naming a chunk that is not there.
      const missing = { ...encoded.pointer, nonce: "00000000" };
      await ctx.flags.set(pointerKey(""), formatPointer(missing));
      expect(parsePointer((await ctx.flags.get(pointerKey("")))!)).toEqual(missing);
      await sleep(TTL_MS + 300);
      expect(await served(ctx.router.url, "127.0.5.1")).toBe("canary");
      expect(await served(ctx.router.url, "127.0.5.2")).toBe("stable");
      const status = await fetchStatus(ctx.router.statusUrl);
      expect(status.document.revision).toBe(current.doc.revision);
      expect(status.document.last_error).toContain(`chunk ${chunkKey("", missing, 0)} is missing`);
      expect(ctx.router.errorLog()).toContain("cannot be loaded");
    });

    it("an older revision coming back in every pointer copy (a node restored with old keys) is replaced by the router's", async () => {
      await flagIps(ctx.memcached.address, "", ["127.0.5.10"]);
      const older = (await ctx.flags.get(pointerKey("")))!;
      await flagIps(ctx.memcached.address, "", ["127.0.5.11"]);
      await loadedEverywhere(ctx.router.url, "127.0.5.11", "canary");
      const newer = (await ctx.flags.get(pointerKey("")))!;
      for (const key of copyKeys(pointerKey(""))) await ctx.flags.set(key, older);
      await until("every pointer copy back to the newer revision", 3000, async () => {
        for (const key of copyKeys(pointerKey(""))) if ((await ctx.flags.get(key)) !== newer) return false;
        return true;
      });
      expect(await served(ctx.router.url, "127.0.5.11")).toBe("canary");
      expect(ctx.router.errorLog()).toContain("older than this router's");
    });

    it("a document over max_rules_bytes is refused, the last revision kept", async () => {
      await flagIps(ctx.memcached.address, "", ["127.0.4.1"]);
      await loadedEverywhere(ctx.router.url, "127.0.4.1", "canary");
      const many = Array.from({ length: 12000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      await flagIps(ctx.memcached.address, "", many);
      await sleep(TTL_MS + 500);
      const status = await fetchStatus(ctx.router.statusUrl);
      expect(status.document.entries.ips).toBe(1);
      expect(status.document.last_error).toMatch(/over max_rules_bytes \(200000\)/);
      expect(await served(ctx.router.url, "127.0.4.1")).toBe("canary");
    });

    it("entries naming a canary this router does not know stay on stable, with a warning", async () => {
      await flagIps(ctx.memcached.address, "", ["127.0.3.1"], { canary: "gamma" });
      await flagIps(ctx.memcached.address, "", ["127.0.3.2"], { canary: "beta" });
      await loadedEverywhere(ctx.router.url, "127.0.3.2", "beta");
      expect(await served(ctx.router.url, "127.0.3.1")).toBe("stable");
      expect(ctx.router.errorLog()).toContain('names canary "gamma"');
    });

    it("with ip_keys = false, seed keys are ignored and requests never ask memcached", async () => {
      await ctx.flags.set("127.0.2.1");
      const stats = async () => Number((await ctx.memcached.stats()).cmd_get);
      const before = await stats();
      const group = clients("127.0.2", 100);
      expect(await allServed(ctx.router.url, group, "stable")).toBe(true);
      const asked = (await stats()) - before;
      // Only the timers' checks (the pointer's copies and the release key): 2 workers, one every 300 ms,
      // over well under a few seconds, so at most 13 of them.
      expect(asked).toBeLessThanOrEqual(13 * CHECK_KEYS);
    });

    it("leaves no error in error.log", () => {
      const problems = logProblems(ctx.router.errorLog()).filter(
        (l) => !/recv\(\) failed \(104: Connection reset by peer\), context: ngx\.timer/.test(l),
      );
      expect(problems).toEqual([]);
    });
  });

  describe("a router that serves nothing", () => {
    const ctx = useColdStarts(locked);

    /** Flushes the store under a router that has answered no request at all; true if the pointer came back within 3 s. */
    async function healedUnasked(initWorker: boolean): Promise<boolean> {
      await flagIps(ctx.memcached.address, "", ["127.0.1.1"]);
      ctx.router = await RouterStack.start(
        ctx.access.router({
          runtime: await testRuntime(),
          memcached: ctx.memcached,
          workers: 2,
          initWorker,
          options: { cache_ttl_ms: TTL_MS },
        }),
      );
      await sleep(2 * TTL_MS);
      await ctx.memcached.flush();
      const back = await until(
        "the pointer written back",
        3000,
        async () => (await withStore(ctx.memcached.address, (s) => s.get(pointerKey("")))) !== undefined,
      ).then(
        () => true,
        () => false,
      );
      await ctx.router.stop();
      ctx.router = undefined;
      return back;
    }

    it("with init_worker(), loads the rules as it starts and writes a lost pointer back", async () => {
      expect(await healedUnasked(true)).toBe(true);
    });

    it("without it, loads nothing until its first request, so a lost pointer stays lost", async () => {
      expect(await healedUnasked(false)).toBe(false);
    });
  });

  describe.each(PATTERNS)("cold start and reload, %s pattern", (pattern) => {
    const ctx = useColdStarts(locked);

    it("the first request of a fresh router is routed by the document already in memcached", async () => {
      await flagIps(ctx.memcached.address, "", ["127.0.1.1"]);
      ctx.router = await RouterStack.start(
        ctx.access.router({
          runtime: await testRuntime(),
          memcached: ctx.memcached,
          pattern,
          workers: 2,
          reuseport: true,
        }),
      );
      expect(await served(ctx.router.url, "127.0.1.1", true)).toBe("canary");
      expect(await served(ctx.router.url, "127.0.1.2", true)).toBe("stable");
    });

    it("a reload while memcached is down keeps the rules (from the shared dict's copy)", async () => {
      await ctx.memcached.stop();
      const reload = await ctx.router!.reload();
      expect(reload.ok, reload.log).toBe(true);
      await closeAgents();
      for (let i = 0; i < 6; i++) expect(await served(ctx.router!.url, "127.0.1.1", true)).toBe("canary");
      expect((await fetchStatus(ctx.router!.statusUrl)).document.source).toBe("shared dict");
      await until("the store's failure in /gray/status", 2000, async () =>
        /memcached/.test((await fetchStatus(ctx.router!.statusUrl)).document.last_error ?? ""),
      );
    });

    it("a fresh start with memcached down routes by the conf alone, then loads once it is back", async () => {
      await ctx.router!.stop();
      ctx.router = await RouterStack.start(
        ctx.access.router({ runtime: await testRuntime(), memcached: ctx.memcached, pattern }),
      );
      const started = Date.now();
      expect(await served(ctx.router.url, "127.0.1.1", true)).toBe("stable");
      // Bounded by the store timeout, not by the store's absence.
      expect(Date.now() - started).toBeLessThan(1000);
      expect((await fetchStatus(ctx.router.statusUrl)).document.revision).toBeNull();
      await ctx.memcached.startAgain();
      await flagIps(ctx.memcached.address, "", ["127.0.1.1"]);
      await until(
        "loaded after the store came back",
        2000,
        async () => (await served(ctx.router!.url, "127.0.1.1")) === "canary",
      );
    });
  });
});
