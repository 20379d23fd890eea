/**
 * The whole system as a fleet (harness/fleet.ts): several routers on their own loopback addresses,
 * memcached nodes behind one nutcracker, the CLI writing through it.
 * - Agreement: 1,000 clients get the same route from every router, the route `gray explain` gives;
 *   a change reaches every router within cache_ttl_ms + 1 s.
 * - Losing a node: one of three memcached nodes killed under load, then restarted empty: no failed
 *   request, no client changes route, no rule lost, edits work again within the proxy's eject time.
 * - The commands the other files do not run through the proxy: rollback and migrate --users.
 */
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkKey, copyKeys, parsePointer, pointerKey } from "../lua-src/gray/document.ts";
import { Fleet } from "../harness/fleet.ts";
import { gray } from "../harness/gray-cli.ts";
import { closeAgents, get } from "../harness/http.ts";
import { Load, type LoadSummary } from "../harness/load.ts";
import { logProblems } from "../harness/nginx.ts";
import { seededRandom } from "../harness/random.ts";
import { editDocument, readRules } from "../harness/rules.ts";
import { type Explanation, explain, routerOptions } from "../node-src/cli/explain.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { AdminStore, withStore } from "../node-src/cli/store.ts";
import { flag, setWeight } from "../node-src/rules/edit.ts";
import type { RulesReader } from "../node-src/rules/revisions.ts";
import type { RouterStack } from "../harness/stack.ts";
import { testRuntime } from "./support.ts";

/** Waits until every router's /gray/status shows the revision (each router here has one worker). */
async function untilLoaded(routers: RouterStack[], revision: number, withinMs: number): Promise<void> {
  const deadline = Date.now() + withinMs;
  for (const r of routers) {
    while ((await fetchStatus(r.statusUrl)).document.revision !== revision) {
      if (Date.now() > deadline) throw new Error(`${r.url} did not load revision ${revision} within ${withinMs} ms`);
      await sleep(20);
    }
  }
}

/** The store read once per key: explain() on 1,000 clients against one revision. */
function cachedReader(store: AdminStore): RulesReader {
  const seen = new Map<string, Promise<string | undefined>>();
  return {
    get: (key: string) => {
      if (!seen.has(key)) seen.set(key, store.get(key));
      return seen.get(key)!;
    },
  };
}

/** Runs `work` on every item, `width` at a time. */
async function pool<T, R>(items: T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await work(items[i]!);
      }
    }),
  );
  return out;
}

describe("a fleet: 3 routers, 2 memcached behind nutcracker", () => {
  const TTL_MS = 500; // the default
  let fleet: Fleet;

  beforeAll(async () => {
    fleet = await Fleet.start({
      runtime: await testRuntime(),
      routers: 3,
      nodes: 2,
      options: { ip_keys: false, trusted_proxies: ["127.0.0.1"], user_header: "X-User", cache_ttl_ms: TTL_MS },
      extras: { canaries: ["beta"] },
    });
  }, 120_000);
  afterAll(async () => {
    await closeAgents();
    await fleet?.stop();
  });

  interface Client {
    ip: string;
    user?: string;
  }

  it("1,000 clients: every router gives the same route, the one gray explain gives", { timeout: 120_000 }, async () => {
    const g = seededRandom(17);
    const clients: Client[] = Array.from({ length: 1000 }, (_, i) => ({
      ip: `198.51.${i >> 8}.${i & 255}`,
      user: g.chance(0.25) ? `u${i}` : undefined,
    }));
    const { revision } = await editDocument(fleet.address, "", "fleet rules", (doc) => {
      for (let i = 0; i < 1000; i += 23) flag(doc, "ip", clients[i]!.ip, i % 2 ? "beta" : "canary", 0);
      flag(doc, "range", "198.51.1.0/26", "canary", 0);
      flag(doc, "range", "198.51.2.128/25", "beta", 0);
      for (let i = 1; i < 1000; i += 4) if (clients[i]!.user && i % 3 === 0) flag(doc, "user", `u${i}`, "beta", 0);
      for (let i = 3; i < 1000; i += 4) if (clients[i]!.user && i % 3 === 0) flag(doc, "user", `u${i}`, "canary", 0);
      setWeight(doc, "canary", 20);
      setWeight(doc, "beta", 15);
    });
    await untilLoaded(fleet.routers, revision, TTL_MS + 3000);

    const started = performance.now();
    const headers = (c: Client) => ["X-Real-IP", c.ip, ...(c.user ? ["X-User", c.user] : [])];
    const routes = await pool(clients, 8, (c) =>
      Promise.all(
        fleet.routers.map(async (r) => {
          const reply = await get(r.url, { headers: headers(c) });
          expect(reply.status).toBe(200);
          return reply.body.trim();
        }),
      ),
    );
    const askedMs = performance.now() - started;
    const options = routerOptions((await fetchStatus(fleet.routers[0]!.statusUrl)).config);
    const explained = await withStore(fleet.address, async (store) => {
      const reader = cachedReader(store);
      const out: Explanation[] = [];
      for (const c of clients) out.push(await explain(reader, options, { ip: c.ip, user: c.user }));
      return out;
    });
    const disagreements = clients.flatMap((c, i) =>
      routes[i]!.every((r) => r === explained[i]!.route)
        ? []
        : [`${c.ip} ${c.user ?? ""}: routers ${routes[i]!.join(",")}, explain ${explained[i]!.route}`],
    );
    expect(disagreements).toEqual([]);
    expect(explained.every((e) => e.revision === revision)).toBe(true);
    // Every rule and every route took part.
    const rules = new Set(explained.map((e) => e.rule));
    for (const rule of ["user", "ip", "range", "weight", "none"]) expect(rules).toContain(rule);
    const tally: Record<string, number> = {};
    for (const e of explained) tally[e.route] = (tally[e.route] ?? 0) + 1;
    expect(Object.keys(tally).sort()).toEqual(["beta", "canary", "stable"]);
    const explainedMs = performance.now() - started - askedMs;
    console.log(
      `agreement: 1,000 clients × ${fleet.routers.length} routers in ${askedMs.toFixed(0)} ms, explained in ${explainedMs.toFixed(0)} ms: ${JSON.stringify(tally)}`,
    );

    // The CLI itself, on a sample, against each router's status URL in turn.
    const sample = clients.filter((_, i) => i % 80 === 0);
    await pool(sample, 2, async (c) => {
      const i = clients.indexOf(c);
      const router = fleet.routers[i % fleet.routers.length]!;
      const args = ["explain", c.ip, ...(c.user ? ["--user", c.user] : []), "--url", router.statusUrl, "--json"];
      const r = await gray(args, { GRAY_MEMCACHED: fleet.address });
      expect(r.code, r.stderr).toBe(0);
      expect((JSON.parse(r.stdout) as Explanation).route, args.join(" ")).toBe(routes[i]![0]);
    });
    console.log(`agreement: gray explain on ${sample.length} of them agreed`);
  });

  it("a change reaches every router within cache_ttl_ms + 1 s", { timeout: 60_000 }, async () => {
    const took: number[] = [];
    for (let k = 1; k <= 5; k++) {
      const ip = `198.18.0.${k}`;
      const r = await gray(["add", ip, "--canary", "beta"], { GRAY_MEMCACHED: fleet.address });
      expect(r.code, r.stderr).toBe(0);
      // From the CLI's exit (every write acknowledged) to the route changing on each router.
      const written = performance.now();
      const each = await Promise.all(
        fleet.routers.map(async (router) => {
          for (;;) {
            const reply = await get(router.url, { headers: ["X-Real-IP", ip] });
            if (reply.body.trim() === "beta") return performance.now() - written;
            if (performance.now() - written > 10_000) throw new Error(`${router.url}: ${ip} not on beta in 10 s`);
            await sleep(10);
          }
        }),
      );
      took.push(Math.max(...each));
      // Out of phase with the routers' timers from one round to the next.
      await sleep(137 * k);
    }
    console.log(
      `propagation to all 3 routers (ms, cache_ttl_ms ${TTL_MS}): ${took.map((t) => t.toFixed(0)).join(", ")}`,
    );
    expect(Math.max(...took)).toBeLessThanOrEqual(TTL_MS + 1000);
  });

  it("rollback and migrate --users work through the proxy", { timeout: 60_000 }, async () => {
    const env = { GRAY_MEMCACHED: fleet.address };
    const before = (await readRules(fleet.address))!;
    expect((await gray(["add", "198.18.1.1"], env)).code).toBe(0);
    const rolled = await gray(["rollback", String(before.revision)], env);
    expect(rolled.code, rolled.stderr).toBe(0);
    const after = (await readRules(fleet.address))!;
    expect(after.ips).toEqual(before.ips);
    expect(after.revision).toBeGreaterThan(before.revision);

    // 0.1's per-user key, read by migrate from the ids given (twemproxy cannot list keys).
    await withStore(fleet.address, (s) => s.set("uid:olduser", "1"));
    const dir = mkdtempSync(join(tmpdir(), "gray-fleet-"));
    try {
      writeFileSync(join(dir, "users"), "olduser\n");
      const migrated = await gray(["migrate", "--users", join(dir, "users")], env);
      expect(migrated.code, migrated.stderr).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect((await readRules(fleet.address))!.users.olduser).toBe("canary");
  });

  it("leaves no error in any router's error.log", () => {
    for (const r of fleet.routers) expect(logProblems(r.errorLog())).toEqual([]);
  });
});

describe("a fleet losing a memcached node under load: 2 routers, 3 nodes, ip_keys = false", () => {
  const TTL_MS = 200;
  let fleet: Fleet;
  const env = () => ({ GRAY_MEMCACHED: fleet.address });

  beforeAll(async () => {
    fleet = await Fleet.start({
      runtime: await testRuntime(),
      routers: 2,
      nodes: 3,
      options: { ip_keys: false, cache_ttl_ms: TTL_MS },
      extras: { canaries: ["beta"] },
      proxy: { serverFailureLimit: 1, serverRetryTimeoutMs: 2000 },
    });
  }, 120_000);
  afterAll(async () => {
    await closeAgents();
    await fleet?.stop();
  });

  /** Each copy of the pointer and of each chunk, read through the proxy: which are there. */
  async function copiesPresent(): Promise<{ pointer: number; chunks: number; expected: number }> {
    return withStore(fleet.address, async (store) => {
      const keys = copyKeys(pointerKey(""));
      const texts: (string | undefined)[] = [];
      for (const k of keys) texts.push(await store.get(k)); // one connection: one request at a time
      const newest = texts.map((t) => (t === undefined ? undefined : parsePointer(t))).find((p) => p !== undefined);
      let chunks = 0;
      let expected = 0;
      if (newest) {
        for (let i = 0; i < newest.crcs.length; i++) {
          for (const key of copyKeys(chunkKey("", newest, i))) {
            expected++;
            if ((await store.get(key)) !== undefined) chunks++;
          }
        }
      }
      return { pointer: texts.filter((t) => t !== undefined).length, chunks, expected };
    });
  }

  it(
    "kill one, restart it empty: 0 failed requests, no client moved, no rule lost, edits within the eject time",
    { timeout: 180_000 },
    async () => {
      const flagged = Array.from({ length: 12 }, (_, i) => `127.102.0.${i + 1}`);
      const inRange = Array.from({ length: 4 }, (_, i) => `127.102.1.${i + 1}`);
      const weighted = Array.from({ length: 16 }, (_, i) => `127.102.2.${i + 1}`);
      const { revision } = await editDocument(fleet.address, "", "fleet: node loss", (doc) => {
        flagged.forEach((ip, i) => flag(doc, "ip", ip, i < 8 ? "canary" : "beta", 0));
        flag(doc, "range", "127.102.1.0/28", "canary", 0);
        // Rules no client here uses: the document is more than a few lines, in several keys' worth of nodes.
        for (let i = 0; i < 2000; i++) flag(doc, "ip", `10.7.${i >> 8}.${i & 255}`, i % 2 ? "beta" : "canary", 0);
        for (let i = 0; i < 200; i++) flag(doc, "user", `fleet-user-${i}`, "beta", 0);
        setWeight(doc, "canary", 30);
        setWeight(doc, "beta", 20);
      });
      await untilLoaded(fleet.routers, revision, TTL_MS + 3000);
      const before = (await readRules(fleet.address))!;
      const options = routerOptions((await fetchStatus(fleet.routers[0]!.statusUrl)).config);
      const sources = [...flagged, ...inRange, ...weighted];
      const expected = new Map<string, string>();
      await withStore(fleet.address, async (store) => {
        for (const ip of sources) expected.set(ip, (await explain(store, options, { ip })).route);
      });
      for (const ip of [...flagged, ...inRange]) expect(expected.get(ip)).not.toBe("stable");
      const weightedRoutes = new Set(weighted.map((ip) => expected.get(ip)));
      expect(weightedRoutes.size, "the weighted clients fall on more than one route").toBeGreaterThan(1);

      const loads = fleet.routers.map((r) =>
        Load.start({ url: `${r.url}/`, sources, durationMs: 120_000, thinkMs: 10 }),
      );
      await sleep(1500);

      // The node holding the pointer's first copy: the harshest one to lose.
      const holders = await Promise.all(
        fleet.nodes.map((n) => withStore(n.address, async (s) => (await s.get(pointerKey(""))) !== undefined)),
      );
      const victim = fleet.nodes[Math.max(0, holders.indexOf(true))]!;
      const pointerCopies: number[][] = [];
      for (const key of copyKeys(pointerKey(""))) {
        const held: number[] = [];
        for (const [i, n] of fleet.nodes.entries())
          if ((await withStore(n.address, (s) => s.get(key))) !== undefined) held.push(i);
        pointerCopies.push(held);
      }
      const killedAt = performance.now();
      const marks: string[] = [`kill ${new Date().toISOString()}`];
      await victim.kill();

      // Edits, as an operator retries one that failed (twemproxy answers SERVER_ERROR until it ejects the node).
      const attempts: { ms: number; code: number; stderr: string }[] = [];
      for (let k = 1; ; k++) {
        const r = await gray(["add", `127.103.0.${k}`], env());
        attempts.push({ ms: performance.now() - killedAt, code: r.code, stderr: r.stderr.trim() });
        if (r.code === 0) break;
        if (performance.now() - killedAt > 20_000) break;
        await sleep(100);
      }
      const editMs = attempts.at(-1)!.ms;

      // Past the eject time (the node is retried and ejected again while dead), then back, empty.
      await sleep(Math.max(0, fleet.proxy.retryTimeoutMs + 1000 - (performance.now() - killedAt)));
      const proxyStats = await fleet.proxy.serverStats();
      await victim.startAgain();
      const restartedAt = performance.now();
      marks.push(`restarted ${new Date().toISOString()}`);
      // The edit after the restart waits for nutcracker to take the node back (its next retry):
      // one made while the node is still ejected lands on another node and is hidden when it
      // rejoins, and lost if no router loaded it meanwhile (docs/fleet.md; CI caught one).
      await sleep(fleet.proxy.retryTimeoutMs + 500);
      let after: { code: number; stderr: string } | undefined;
      for (let k = 0; k < 20; k++) {
        after = await gray(["add-user", "after-restart", "--canary", "beta"], env());
        if (after.code === 0) break;
        await sleep(200);
      }
      // Routers put back the copies the empty node lost: the pointer's at once, the chunks' within 10 s.
      let copies = await copiesPresent();
      while (copies.pointer + copies.chunks < 3 + copies.expected && performance.now() - restartedAt < 15_000) {
        await sleep(500);
        copies = await copiesPresent();
      }
      const healedMs = performance.now() - restartedAt;
      const summaries: LoadSummary[] = await Promise.all(loads.map((l) => l.stop()));
      const moved = loads.flatMap((l, i) =>
        l.records
          .filter((rec) => rec.status === 200 && rec.route !== expected.get(rec.from))
          .map((rec) => `router ${i}: ${rec.from} → ${rec.route} at ${rec.at.toFixed(0)} ms`),
      );

      const report = {
        marks,
        victim: fleet.nodes.indexOf(victim),
        pointerCopies,
        before: before.revision,
        proxyLog: fleet.proxy.log().split("\n").slice(-30),
        summaries: summaries.map((s) => ({ sent: s.sent, failed: s.failed, non2xx: s.non2xx, routes: s.routes })),
        attempts,
        afterRestart: after,
        ejects: Object.fromEntries(
          Object.entries(proxyStats).map(([k, v]) => [k, [v.server_err, v.server_ejected_at]]),
        ),
        copies,
        healedMs: Math.round(healedMs),
        statuses: await Promise.all(fleet.routers.map(async (r) => (await fetchStatus(r.statusUrl)).document)),
        logProblems: fleet.routers.map((r) => logProblems(r.errorLog())),
        notices: fleet.routers.map((r) =>
          r
            .errorLog()
            .split("\n")
            .filter((l) => l.includes("gray.router"))
            .map((l) => l.replace(/^\d+\/\d+\/\d+ /, "").replace(/, context: .*$/, "")),
        ),
      };
      console.log(`node loss: ${JSON.stringify(report, null, 1)}`);

      for (const s of summaries) {
        expect(s.failed, JSON.stringify(s)).toBe(0);
        expect(s.non2xx).toBe(0);
        expect(s.sent).toBeGreaterThan(500);
      }
      expect(moved.slice(0, 10)).toEqual([]);
      expect(editMs, JSON.stringify(attempts)).toBeLessThanOrEqual(fleet.proxy.retryTimeoutMs + 2000);
      expect(after?.code, after?.stderr).toBe(0);
      // No rule lost: every entry from before, plus the two edits.
      const now = (await readRules(fleet.address))!;
      const added = attempts.filter((a) => a.code === 0).length;
      expect(now.ips).toEqual({ ...before.ips, ...Object.fromEntries([[`127.103.0.${attempts.length}`, "canary"]]) });
      expect(added).toBe(1);
      expect(now.ranges).toEqual(before.ranges);
      expect(now.users).toEqual({ ...before.users, "after-restart": "beta" });
      expect(now.canaries).toEqual(before.canaries);
      expect(copies).toEqual({ pointer: 3, chunks: copies.expected, expected: copies.expected });
    },
  );
});

/**
 * The document's own durability, with no router to write it back: each key (the pointer, each chunk)
 * is stored as <key>, <key>~1, <key>~2 so that a pool spreads the copies over its nodes. Under
 * twemproxy's default hash (fnv1a_64, which nutcracker computes in 32 bits, multiplying by 0x1b3 per
 * byte), keys that differ only in their last byte hash 435 apart out of 2^32, so ~1 and ~2 land on
 * the same ketama point: two places, not three, and one place for about a third of the keys.
 */
describe("the document's copies over 3 nodes, no router running", () => {
  let fleet: Fleet;
  const PREFIXES = Array.from({ length: 10 }, (_, i) => `copies${i}:`);

  beforeAll(async () => {
    fleet = await Fleet.start({ runtime: await testRuntime(), routers: 0, nodes: 3 });
  }, 120_000);
  afterAll(async () => {
    await fleet?.stop();
  });

  /** Which nodes (by index) hold each copy of the key. */
  async function holders(key: string): Promise<number[][]> {
    const out: number[][] = [];
    for (const copy of copyKeys(key)) {
      const held: number[] = [];
      for (const [i, node] of fleet.nodes.entries())
        if ((await withStore(node.address, (s) => s.get(copy))) !== undefined) held.push(i);
      out.push(held);
    }
    return out;
  }

  // Three copies under keys that hash independently: with 3 nodes, a key's copies all land on one
  // node for about 1 key in 9 (and on the lost node for 1 in 27). That is why routers also write
  // back what a lost node took, from memory; this checks the spread is what independent keys give
  // (tags at the end of the key put ~1 and ~2 together for every key: twemproxy's FNV-1a).
  it("the copies' keys spread over the nodes as independent keys do", { timeout: 120_000 }, async () => {
    const placements: { prefix: string; key: string; nodes: number[][] }[] = [];
    for (const prefix of PREFIXES) {
      await editDocument(fleet.address, prefix, "copies", (doc) => {
        for (let i = 0; i < 20; i++) flag(doc, "ip", `10.9.0.${i}`, "canary", 0);
      });
      const pointer = parsePointer((await withStore(fleet.address, (s) => s.get(pointerKey(prefix))))!)!;
      for (const key of [pointerKey(prefix), ...pointer.crcs.map((_, i) => chunkKey(prefix, pointer, i))])
        placements.push({ prefix, key, nodes: await holders(key) });
    }
    const sameNode = (p: (typeof placements)[number]) => new Set(p.nodes.flat()).size === 1;
    const tildesTogether = placements.filter((p) => p.nodes[1]!.join() === p.nodes[2]!.join()).length;
    const onOneNode = placements.filter(sameNode);
    console.log(
      `copies: ${placements.length} keys; ~1 and ~2 on the same node for ${tildesTogether}; all three on one node for ${onOneNode.length}: ` +
        onOneNode.map((p) => `${p.key} → node ${p.nodes[0]!.join()}`).join(", "),
    );

    // What that costs: kill a node that holds every copy of some key, and read that prefix's document.
    const lost: string[] = [];
    const victim = onOneNode[0];
    if (victim !== undefined) {
      await fleet.nodes[victim.nodes[0]![0]!]!.kill();
      await sleep(fleet.proxy.retryTimeoutMs / 2);
      for (const prefix of new Set(
        onOneNode.filter((p) => p.nodes[0]![0] === victim.nodes[0]![0]).map((p) => p.prefix),
      )) {
        const read = await readRules(fleet.address, prefix).then(
          (doc) => (doc === undefined ? "no document" : `revision ${doc.revision}, ${Object.keys(doc.ips).length} ips`),
          (err: Error) => err.message,
        );
        lost.push(`${prefix}: ${read}`);
      }
      console.log(`copies: after killing node ${victim.nodes[0]![0]}: ${lost.join("; ")}`);
    }
    // Independent placement: ~1 and ~2 together for about a third of the keys, all three for about a ninth.
    expect(tildesTogether).toBeLessThanOrEqual(Math.ceil(placements.length * 0.6));
    expect(onOneNode.length).toBeLessThanOrEqual(Math.ceil(placements.length * 0.35));
  });
});
