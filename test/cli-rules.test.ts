/**
 * The rules document through the `gray` CLI as separate processes, on real memcached and through
 * twemproxy: concurrent edits all land, a torn write or a missing chunk never passes for a
 * revision, history and rollback, export → flush → apply, diff, migrate from the 0.1 keys,
 * --init after a flush, and bad input that writes nothing.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FlagStore } from "../harness/flags.ts";
import { gray } from "../harness/gray-cli.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { NutcrackerServer } from "../harness/nutcracker.ts";
import { editDocument, flagIps, readRules, setWeight } from "../harness/rules.ts";
import { chunkKey, copyKeys, parsePointer, pointerKey } from "../lua-src/gray/document.ts";
import type { Listing } from "../node-src/cli/commands/list.ts";
import { AdminStore } from "../node-src/cli/store.ts";
import { flag } from "../node-src/rules/edit.ts";
import { encodeDocument } from "../node-src/rules/format.ts";
import type { RulesJson } from "../node-src/rules/json.ts";
import { nextRevision } from "../node-src/rules/edit.ts";
import { sharedMemcached, storedKeys, testRuntime } from "./support.ts";

const dir = mkdtempSync(join(tmpdir(), "gray-rules-test-"));
function file(name: string, content: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
}

async function withAdmin<T>(address: string, work: (s: AdminStore) => Promise<T>): Promise<T> {
  const s = new AdminStore(address);
  try {
    return await work(s);
  } finally {
    s.close();
  }
}

/** Runs the suite's common cases against a store address (memcached itself, or a proxy). */
function expectOk(r: { code: number; stdout: string; stderr: string }, what: string): string {
  expect(r.stderr, what).toBe("");
  expect(r.code, what).toBe(0);
  return r.stdout;
}

describe("the rules document on memcached", () => {
  const address = () => sharedMemcached().address;
  const env = () => ({ GRAY_MEMCACHED: address() });
  const run = async (args: string[]) => expectOk(await gray(args, env()), args.join(" "));
  const flags = () => new FlagStore(address());

  beforeEach(async () => {
    const f = flags();
    await f.flush();
    f.close();
  });

  it(
    "20 edits started at once (add, add-user, remove, weight) all land, each its own revision",
    { timeout: 120_000 },
    async () => {
      await flagIps(address(), "", ["192.0.2.101", "192.0.2.102", "192.0.2.103", "192.0.2.104", "192.0.2.105"]);
      const edits: string[][] = [];
      for (let i = 1; i <= 5; i++) {
        edits.push(["add", `198.51.100.${i}`, "--canary", "beta"]);
        edits.push(["add-user", `user${i}`]);
        edits.push(["remove", `192.0.2.10${i}`]);
        edits.push(["weight", "2", "--canary", `c${i}`]);
      }
      const results = await Promise.all(edits.map((args) => gray(args, env())));
      results.forEach((r, i) => expectOk(r, edits[i]!.join(" ")));
      const doc = (await readRules(address()))!;
      for (let i = 1; i <= 5; i++) {
        expect(doc.ips[`198.51.100.${i}`]).toBe("beta");
        expect(doc.users[`user${i}`]).toBe("canary");
        expect(doc.ips[`192.0.2.10${i}`]).toBeUndefined();
        expect(doc.canaries[`c${i}`]!.buckets.reduce((n, v, j) => (j % 2 ? n + v : n), 0)).toBe(2000);
      }
      expect(Object.keys(doc.ips)).toHaveLength(5);
      // 21 revisions (the harness's and the 20 edits): the newest 20 are the edits, each its own.
      expect(doc.history).toHaveLength(20);
      expect(doc.history.map((h) => h.change).sort()).toEqual(edits.map((e) => e.join(" ")).sort());
      const revisions = doc.history.map((h) => h.revision);
      expect([...revisions].sort((a, b) => b - a)).toEqual(revisions);
      // Losers' chunks were deleted, old ones cleaned up: only the history's revisions have chunks.
      const keys = (await storedKeys()).filter((k) => k.startsWith("gray:rules:"));
      const kept = new Set(doc.history.map((h) => h.revision));
      for (const k of keys) expect(kept.has(Number(k.split(":")[2])), k).toBe(true);
    },
  );

  it("a torn write (chunks written, pointer not) leaves readers on the old revision", async () => {
    await run(["add", "203.0.113.1", "--init"]);
    const before = (await readRules(address()))!;
    const next = structuredClone(before);
    flag(next, "ip", "203.0.113.2", "canary", 0);
    nextRevision(next, before.revision + 1, undefined, { at: 1, by: "x@y", change: "torn" });
    const { pointer, chunks } = encodeDocument(next);
    await withAdmin(address(), async (s) => {
      for (const [i, c] of chunks.entries()) await s.set(chunkKey("", pointer, i), c);
    });
    const listed = JSON.parse(await run(["list", "--json"])) as Listing;
    expect(listed.revision).toBe(before.revision);
    expect(listed.canaries.canary!.ips.map((e) => e.subject)).toEqual(["203.0.113.1"]);
    // The next edit builds on the revision in force, not on the torn one.
    await run(["add", "203.0.113.3"]);
    expect(Object.keys((await readRules(address()))!.ips).sort()).toEqual(["203.0.113.1", "203.0.113.3"]);
  });

  it("a missing chunk: exit 1 naming the key, nothing written; --force starts over", async () => {
    await run(["add", "203.0.113.1", "--init"]);
    const pointerText = await withAdmin(address(), (s) => s.get(pointerKey("")));
    const key = chunkKey("", parsePointer(pointerText!)!, 0);
    // One copy gone is read past; every copy gone (and no older revision to fall back on) is refused.
    await withAdmin(address(), (s) => s.delete(key));
    expect((await gray(["list"], env())).code).toBe(0);
    await withAdmin(address(), async (s) => {
      for (const copy of copyKeys(key)) await s.delete(copy);
    });
    for (const args of [["list"], ["add", "203.0.113.2"], ["export"], ["history"]]) {
      const r = await gray(args, env());
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(`chunk ${key} is missing`);
    }
    expect(await withAdmin(address(), (s) => s.get(pointerKey("")))).toBe(pointerText);
    await run(["add", "203.0.113.2", "--force"]);
    expect(Object.keys((await readRules(address()))!.ips)).toEqual(["203.0.113.2"]);
  });

  it("history lists the revisions; rollback writes a new one equal to an earlier", async () => {
    await run(["add", "203.0.113.1", "--init"]);
    await run(["weight", "10"]);
    await run(["add-user", "alice", "--canary", "beta"]);
    const history = JSON.parse(await run(["history", "--json"])) as {
      history: { revision: number; change: string; by: string; current: boolean }[];
    };
    expect(history.history.map((h) => h.change)).toEqual([
      "add-user alice --canary beta",
      "weight 10 --canary canary",
      "add 203.0.113.1",
    ]);
    expect(history.history[0]!.current).toBe(true);
    expect(history.history[0]!.by).toMatch(/^[^@\s]+@[^@\s]+$/);
    const text = await run(["history"]);
    expect(text.split("\n")[0]).toMatch(
      /^\d{13} {2}\d{4}-\d\d-\d\dT.* {2}add-user alice --canary beta {2}\(current\)$/,
    );

    const target = history.history[2]!.revision;
    const out = await run(["rollback", String(target)]);
    expect(out).toContain(`has the rules of ${target}`);
    const doc = (await readRules(address()))!;
    expect(doc.users).toEqual({});
    expect(doc.canaries.canary!.buckets).toEqual([]);
    expect(doc.ips).toEqual({ "203.0.113.1": "canary" });
    expect(doc.history[0]!.change).toBe(`rollback ${target}`);

    const gone = await gray(["rollback", "123"], env());
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain("revision 123 is not in the last");
    // A revision whose chunks are gone cannot be rolled back to.
    const older = parsePointer(doc.history[1]!.pointer!)!;
    await withAdmin(address(), async (s) => {
      for (const copy of copyKeys(chunkKey("", older, 0))) await s.delete(copy);
    });
    const evicted = await gray(["rollback", String(older.revision)], env());
    expect(evicted.code).toBe(1);
    expect(evicted.stderr).toContain(`chunk ${chunkKey("", older, 0)} is missing`);
  });

  it("export → flush → apply restores the rules, buckets included; diff shows what apply would change", async () => {
    await run(["add", "203.0.113.1", "2001:db8::1", "10.0.0.0/8", "--init"]);
    await run(["add-user", "alice", "--canary", "beta", "--ttl", "600"]);
    await run(["weight", "10", "--canary", "beta"]);
    await run(["weight", "5"]);
    const exported = await run(["export"]);
    const json = JSON.parse(exported) as RulesJson;
    expect(json).toMatchObject({
      format: 1,
      canaries: { beta: { weight: 10, buckets: [[0, 10_000]] }, canary: { weight: 5, buckets: [[10_000, 5_000]] } },
      ips: [
        { ip: "203.0.113.1", canary: "canary", expires: null },
        { ip: "2001:db8::1", canary: "canary", expires: null },
      ],
      ranges: [{ cidr: "10.0.0.0/8", canary: "canary", expires: null }],
      users: [{ user: "alice", canary: "beta" }],
    });
    expect(json.users[0]!.expires).toBeGreaterThan(Date.now() / 1000);
    const backup = file("backup.json", exported);
    expect(await run(["diff", backup])).toBe("no changes\n");
    expect((await gray(["diff", backup, "--exit-code"], env())).code).toBe(0);

    const f = flags();
    await f.flush();
    f.close();
    // No document and no router to restore it: edits refuse, apply restores.
    const refused = await gray(["add", "203.0.113.9"], env());
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--init");
    expect(await run(["diff", backup])).toContain("+ ip 203.0.113.1 canary");
    await run(["apply", backup]);
    const restored = JSON.parse(await run(["export"])) as RulesJson;
    expect({ ...restored, revision: 0 }).toEqual({ ...json, revision: 0 });

    const changed = structuredClone(json);
    changed.ips = changed.ips.filter((e) => e.ip !== "203.0.113.1");
    changed.ips.push({ ip: "203.0.113.50", canary: "beta", expires: null });
    changed.canaries.canary!.weight = 7;
    delete (changed.canaries.canary as Partial<RulesJson["canaries"][string]>).buckets;
    const edited = file("edited.json", changed);
    const diff = await gray(["diff", edited, "--exit-code"], env());
    expect(diff.code).toBe(1);
    expect(diff.stdout.trim().split("\n")).toEqual([
      "~ canary canary weight 5 % -> 7 %",
      "+ ip 203.0.113.50 beta",
      "- ip 203.0.113.1 canary",
    ]);
    await run(["apply", edited]);
    expect(await run(["diff", edited])).toBe("no changes\n");
    expect((await readRules(address()))!.canaries.canary!.buckets).toEqual([10_000, 7_000]);
  });

  it("a bad apply file: exit 2 naming the entry, nothing written", async () => {
    await run(["add", "203.0.113.1", "--init"]);
    const before = await withAdmin(address(), (s) => s.get(pointerKey("")));
    const cases: [string, string][] = [
      [file("bad1.json", { format: 1, ips: [{ ip: "203.0.113.1" }, { ip: "nope" }] }), "ips[1].ip: not an IPv4"],
      [file("bad2.json", { format: 1, canaries: { a: { weight: 70 }, b: { weight: 31 } } }), "canaries.b.weight"],
      [file("bad3.json", "{ not json"), "is not JSON"],
      [join(dir, "missing.json"), "cannot read"],
    ];
    for (const [path, says] of cases) {
      const r = await gray(["apply", path], env());
      expect(r.code, path).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(says);
    }
    expect(await withAdmin(address(), (s) => s.get(pointerKey("")))).toBe(before);
  });

  it("weights over 100 % together: exit 2, nothing written", async () => {
    await run(["weight", "60", "--init"]);
    const before = await withAdmin(address(), (s) => s.get(pointerKey("")));
    const r = await gray(["weight", "41", "--canary", "beta"], env());
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("may not exceed 100 %");
    for (const args of [
      ["weight", "1.0001"],
      ["weight", "5", "--canary", "Beta"],
      ["add", "203.0.113.1", "--canary", "stable"],
    ])
      expect((await gray(args, env())).code, args.join(" ")).toBe(2);
    expect(await withAdmin(address(), (s) => s.get(pointerKey("")))).toBe(before);
    expect(await run(["weight"])).toBe("canary  60 %\nstable  40 % (what no canary holds)\n");
  });

  it("after a flush an edit waits for a router to write the last revision back, else needs --init", async () => {
    await run(["add", "203.0.113.1", "--init"]);
    const pointer = await withAdmin(address(), (s) => s.get(pointerKey("")));
    const doc = (await readRules(address()))!;
    const { chunks } = encodeDocument(doc, parsePointer(pointer!)!.nonce);
    const f = flags();
    await f.flush();
    f.close();
    // A router brings the last revision back (add) a second into the edit's wait.
    const edit = gray(["add", "203.0.113.2"], env());
    await new Promise((r) => setTimeout(r, 1000));
    await withAdmin(address(), async (s) => {
      for (const [i, c] of chunks.entries()) await s.set(chunkKey("", parsePointer(pointer!)!, i), c);
      expect(await s.add(pointerKey(""), pointer!)).toBe(true);
    });
    expectOk(await edit, "add during the wait");
    expect(Object.keys((await readRules(address()))!.ips).sort()).toEqual(["203.0.113.1", "203.0.113.2"]);

    const g = flags();
    await g.flush();
    g.close();
    const started = Date.now();
    const refused = await gray(["add", "203.0.113.3"], env());
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/no rules document at gray:rules .*pass --init .*gray apply FILE/);
    expect(await storedKeys()).toEqual([]);
    await run(["add", "203.0.113.3", "--init"]);
    expect(Object.keys((await readRules(address()))!.ips)).toEqual(["203.0.113.3"]);
  });

  it("migrate reads the 0.1 keys into one revision and leaves them in place", async () => {
    await withAdmin(address(), async (s) => {
      await s.set("gray:ranges", "10.1.0.0/16 junk 2001:db8:b::/48");
      await s.set("gray:weight", "12.5");
      await s.set("uid:alice", "1");
      await s.set("uid:bob", "0");
      await s.set("uid:carol", "1", 600);
      await s.set("203.0.113.77", "1");
    });
    const out = await run(["migrate"]);
    expect(out).toContain("migrated 2 range(s), 2 user(s), weight 12.5 %");
    expect(out).toContain(`skipped "junk"`);
    const doc = (await readRules(address()))!;
    expect(doc.ranges).toEqual({ "10.1.0.0/16": "canary", "2001:db8:b::/48": "canary" });
    expect(doc.users).toEqual({ alice: "canary", carol: "canary" });
    expect(doc.userExpires.carol).toBeGreaterThan(Date.now() / 1000);
    expect(doc.canaries.canary!.buckets).toEqual([0, 12_500]);
    expect(doc.ips).toEqual({});
    expect(await storedKeys()).toEqual(
      expect.arrayContaining(["gray:ranges", "gray:weight", "uid:alice", "uid:bob", "uid:carol", "203.0.113.77"]),
    );
    // Again, with the ids from a file: nothing new, nothing written.
    expect(await run(["migrate", "--users", file("users.txt", "# ids\nalice\n\nbob\n")])).toContain(
      "unchanged revision",
    );
    expect((await gray(["migrate", "--users", file("bad-users.txt", "ok\nnot ok\n")], env())).code).toBe(2);
  });

  it("list shows each canary with its entries and says seed keys are not listed", async () => {
    await setWeight(address(), "", 5, "beta");
    await run(["add", "203.0.113.1", "--ttl", "600"]);
    await run(["add", "10.0.0.0/8", "--canary", "beta"]);
    const text = await run(["list"]);
    expect(text).toMatch(
      /canary canary {2}weight 0 %\n {2}ranges \(none\)\n {2}ips\n {4}203\.0\.113\.1 {2}\(expires in \d+ s\)/,
    );
    expect(text).toContain("canary beta  weight 5 %\n  ranges\n    10.0.0.0/8\n");
    expect(text).toContain("per-IP seed keys (read by routers with ip_keys = true) are not listed");
    const json = JSON.parse(await run(["list", "--json"])) as Listing;
    expect(json.canaries.beta).toEqual({
      weight: 5,
      ranges: [{ subject: "10.0.0.0/8", expires: null }],
      ips: [],
      users: [],
    });
    await run(["remove", "203.0.113.1", "10.0.0.0/8", "--canary", "beta"]);
    const after = (await readRules(address()))!;
    expect(after.ips).toEqual({ "203.0.113.1": "canary" });
    expect(after.ranges).toEqual({});
  });

  it("the harness helper writes the same document (a revision per call)", async () => {
    const first = await editDocument(address(), "app:", "init", () => undefined);
    await setWeight(address(), "app:", 25);
    const doc = (await readRules(address(), "app:"))!;
    expect(doc.revision).toBeGreaterThan(first.revision);
    expect(doc.history.map((h) => h.change)).toEqual(["test: weight 25 --canary canary", "test: init"]);
    expect(JSON.parse(await run(["weight", "--prefix", "app:", "--json"]))).toMatchObject({ weights: { canary: 25 } });
  });
});

describe("the rules document through twemproxy", () => {
  let servers: MemcachedServer[] = [];
  let proxy: NutcrackerServer;
  const env = () => ({ GRAY_MEMCACHED: proxy.address });
  const run = async (args: string[]) => expectOk(await gray(args, env()), args.join(" "));

  beforeAll(async () => {
    const runtime = await testRuntime();
    servers = [await MemcachedServer.start(runtime), await MemcachedServer.start(runtime)];
    proxy = await NutcrackerServer.start(runtime, servers);
  });
  afterAll(async () => {
    await proxy?.stop();
    for (const s of servers) await s.stop();
  });

  it(
    "add, list, history, export → flush → apply, a document in chunks over both servers",
    { timeout: 120_000 },
    async () => {
      await run(["add", "203.0.113.1", "--init"]);
      await run(["add-user", "alice", "--canary", "beta"]);
      await run(["weight", "20", "--canary", "beta"]);
      // Enough entries for several chunks, which the proxy spreads over its servers by key.
      const many = Array.from({ length: 40_000 }, (_, i) => `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`);
      await flagIps(proxy.address, "", many);
      const listed = JSON.parse(await run(["list", "--json"])) as Listing;
      expect(listed.canaries.canary!.ips).toHaveLength(40_001);
      expect(listed.canaries.beta).toMatchObject({ weight: 20, users: [{ subject: "alice", expires: null }] });
      const history = JSON.parse(await run(["history", "--json"])) as { history: { change: string }[] };
      expect(history.history.map((h) => h.change).slice(1)).toEqual([
        "weight 20 --canary beta",
        "add-user alice --canary beta",
        "add 203.0.113.1",
      ]);
      const pointer = parsePointer((await withAdmin(proxy.address, (s) => s.get(pointerKey(""))))!)!;
      expect(pointer.crcs.length).toBeGreaterThan(1);
      const holders = await Promise.all(
        servers.map((m) => withAdmin(m.address, async (s) => (await s.get(chunkKey("", pointer, 0))) !== undefined)),
      );
      expect(holders.filter(Boolean)).toHaveLength(1);

      const backup = file("proxy-backup.json", await run(["export"]));
      for (const m of servers) {
        const f = new FlagStore(m.address);
        await f.flush();
        f.close();
      }
      await run(["apply", backup]);
      const restored = JSON.parse(await run(["list", "--json"])) as Listing;
      expect({ ...restored, revision: 0 }).toEqual({ ...listed, revision: 0 });
      expect(await run(["diff", backup])).toBe("no changes\n");
    },
  );
});
