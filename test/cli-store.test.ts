/**
 * The CLI never reports what did not happen: against peers that close, refuse, answer garbage or
 * stall, every command that writes exits 1 within its timeout with one line naming the store and
 * what it answered, prints nothing on stdout, and `gray weight 0 && echo rolled back` says nothing.
 * Bad --prefix / --value / --url input exits 2 by the router's own rules; IPv6 store addresses
 * work; a rules pointer or chunk that is not what it claims is refused by name, never overwritten.
 */
import { execFile } from "node:child_process";
import { type Socket, createConnection } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GARBAGE_KINDS,
  GarbageMemcached,
  HOSTILITY_KINDS,
  type Hostility,
  HostileMemcached,
} from "../harness/fake-memcached.ts";
import { GRAY_BIN, gray } from "../harness/gray-cli.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { checkCanaryValue, checkKeyPrefix, parseOptions } from "../lua-src/gray/options.ts";
import { TextConnection } from "../node-src/cli/memcached-text.ts";
import { AdminStore, STORE_TIMEOUT_MS } from "../node-src/cli/store.ts";
import { sharedMemcached, testRuntime, useRouter, cliEnv, storeState, expectNothingWritten } from "./support.ts";
import { flagIps, readRules, setWeight } from "../harness/rules.ts";
import { chunkKey, copyKeys, formatPointer, parsePointer } from "../lua-src/gray/document.ts";
import { weights } from "../node-src/rules/edit.ts";
import { crc32Text } from "../node-src/rules/format.ts";

/** One router for the file, on the shared memcached (flushed before each test): release and status read its /gray/status. */
const ctx = useRouter();

/** Every command that writes, as an operator types it. */
const WRITES = (): string[][] => [
  ["add", "127.0.0.9"],
  ["add", "198.51.100.0/24"],
  ["remove", "127.0.0.9"],
  ["remove", "198.51.100.0/24"],
  ["add-user", "alice"],
  ["remove-user", "alice"],
  ["weight", "0"],
  ["release", "--steps", "100", "--interval", "1s", "--status-url", ctx.router.statusUrl],
];

/** What the one line on stderr must say for each kind of peer. */
const REASON: Record<Hostility, RegExp> = {
  "close at once": /closed the connection without answering/,
  "close after reading": /closed the connection without answering/,
  "too many connections": /answered "ERROR Too many open connections"/,
  "garbage and stay": /answered "\+OK", which is not a memcached reply \(protocol error\)/,
  stall: new RegExp(`gave no answer within ${STORE_TIMEOUT_MS} ms`),
};

/** A process start on a loaded 2-core machine, on top of the store's timeout. */
const MARGIN_MS = 4000;

async function timed(args: string[], env: Record<string, string>) {
  const started = Date.now();
  const r = await gray(args, env);
  return { ...r, ms: Date.now() - started };
}

/** `gray weight 0 && echo rolled back`, through a shell, as an operator's script runs it. */
function rollbackScript(address: string): Promise<{ code: number; stdout: string }> {
  const script = `"${process.execPath}" "${GRAY_BIN}" weight 0 && echo rolled back`;
  return new Promise((resolve) => {
    execFile(
      "sh",
      ["-c", script],
      { env: { ...process.env, GRAY_MEMCACHED: address }, timeout: 30_000 },
      (err, stdout) => resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout }),
    );
  });
}

function expectFailure(
  r: { code: number; stdout: string; stderr: string },
  address: string,
  reason: RegExp,
  what: string,
) {
  expect(r.code, `${what}: ${r.stderr}`).toBe(1);
  expect(r.stdout, what).toBe("");
  const lines = r.stderr.trim().split("\n");
  expect(lines, what).toHaveLength(1);
  expect(lines[0], what).toContain(`memcached at ${address}`);
  expect(lines[0], what).toMatch(reason);
}

for (const kind of HOSTILITY_KINDS) {
  describe(`a store that does "${kind}"`, () => {
    let fake: HostileMemcached;
    beforeAll(async () => {
      fake = await HostileMemcached.start(kind);
    });
    afterAll(() => fake?.stop());

    it("fails every write with exit 1 and the reason, within the timeout", { timeout: 90_000 }, async () => {
      const env = { GRAY_MEMCACHED: fake.address };
      for (const args of WRITES()) {
        const r = await timed(args, env);
        const what = args.join(" ");
        expectFailure(r, fake.address, REASON[kind], what);
        if (kind === "stall") expect(r.ms, what).toBeGreaterThanOrEqual(STORE_TIMEOUT_MS);
        // Reported at once, not after the store's timeout.
        else expect(r.ms, what).toBeLessThan(STORE_TIMEOUT_MS);
        expect(r.ms, what).toBeLessThan(STORE_TIMEOUT_MS + MARGIN_MS);
      }
      expect(fake.connections).toBeGreaterThanOrEqual(WRITES().length);
    });

    it("leaves `gray weight 0 && echo rolled back` silent", async () => {
      const r = await rollbackScript(fake.address);
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
    });
  });
}

describe("the store client against garbage that stays connected", () => {
  it("reports a protocol error at once, not after its timeout", async () => {
    const fake = await HostileMemcached.start("garbage and stay");
    const store = new AdminStore(fake.address, { timeoutMs: 5000 });
    try {
      const started = Date.now();
      await expect(store.set("127.0.0.9", "1")).rejects.toThrow(
        /not written: it answered "\+OK", which is not a memcached reply/,
      );
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      store.close();
      await fake.stop();
    }
  });
});

describe("a store that answers garbage of every kind", () => {
  for (const kind of GARBAGE_KINDS) {
    it(`"${kind}": gray add exits 1, nothing reported written`, async () => {
      const fake = await GarbageMemcached.start(7, [kind]);
      try {
        const r = await timed(["add", "127.0.0.9"], { GRAY_MEMCACHED: fake.address });
        expectFailure(r, fake.address, /gets gray:rules: not read: it /, kind);
        expect(r.ms).toBeLessThan(STORE_TIMEOUT_MS + MARGIN_MS);
        expect((await rollbackScript(fake.address)).stdout).toBe("");
      } finally {
        await fake.stop();
      }
    });
  }

  it("an error line is named as the store said it", async () => {
    const fake = await GarbageMemcached.start(7, ["SERVER_ERROR"]);
    try {
      const r = await gray(["weight", "0"], { GRAY_MEMCACHED: fake.address });
      expectFailure(r, fake.address, /answered "SERVER_ERROR out of memory storing object"/, "weight 0");
    } finally {
      await fake.stop();
    }
  });
});

/** Connections to memcached held open until it refuses one; the refused one's answer. */
async function fillConnections(port: number): Promise<{ held: Socket[]; refusal: string }> {
  const held: Socket[] = [];
  for (let i = 0; i < 200; i++) {
    const socket = createConnection({ host: "127.0.0.1", port });
    // The first line decides: VERSION (a connection held) or memcached's refusal. On a busy machine
    // either can take a while, so no short timeout may stand in for one.
    const answer = await new Promise<string>((resolve) => {
      let got = "";
      socket.on("data", (d) => {
        got += d.toString("latin1");
        if (got.includes("\r\n")) resolve(got);
      });
      socket.once("close", () => resolve(got));
      socket.once("error", () => resolve(got));
      socket.write("version\r\n");
      setTimeout(() => resolve(got), 10_000);
    });
    if (answer.startsWith("VERSION")) held.push(socket);
    else {
      socket.destroy();
      return { held, refusal: answer };
    }
  }
  throw new Error("memcached never refused a connection");
}

/** The rules, read as soon as memcached takes a connection again (it sees closed ones a moment after they close). */
async function readOnceFree(address: string): ReturnType<typeof readRules> {
  for (let tries = 0; ; tries++) {
    try {
      return await readRules(address);
    } catch (err) {
      if (tries >= 20 || !/Too many open connections/.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe("real memcached at its connection limit (-c)", () => {
  let memcached: MemcachedServer;
  beforeAll(async () => {
    memcached = await MemcachedServer.start(await testRuntime(), { maxConnections: 16 });
  });
  afterAll(() => memcached?.stop());

  it("gray add / remove / weight exit 1 naming its answer, and nothing is written", async () => {
    await setWeight(memcached.address, "", 50);
    await flagIps(memcached.address, "", ["127.0.0.8"]);
    const before = await readRules(memcached.address);

    const { held, refusal } = await fillConnections(memcached.port);
    try {
      expect(refusal).toBe("ERROR Too many open connections\r\n");
      const env = { GRAY_MEMCACHED: memcached.address };
      for (const args of [
        ["weight", "0"],
        ["add", "127.0.0.9"],
        ["remove", "127.0.0.8"],
      ]) {
        expectFailure(await gray(args, env), memcached.address, REASON["too many connections"], args.join(" "));
      }
      expect((await rollbackScript(memcached.address)).stdout).toBe("");
    } finally {
      for (const s of held) s.destroy();
    }

    // Read back once connections are free again (memcached may take a moment to see the closes): nothing changed.
    const after = await readOnceFree(memcached.address);
    expect(after).toEqual(before);
    expect(after!.ips).toEqual({ "127.0.0.8": "canary" });
  });
});

describe("bad input by the router's own rules: exit 2, nothing written", () => {
  const env = cliEnv;

  const p = (n: number) => "p".repeat(n);
  const BAD: [string[], string][] = [
    [["add", "127.0.0.9", "--prefix", p(206)], checkKeyPrefix(p(206), false)!],
    [["weight", "5", "--prefix", p(210)], checkKeyPrefix(p(210), false)!],
    // 103 two-byte letters: 206 bytes, as Lua counts them.
    [["add", "127.0.0.9", "--prefix", "é".repeat(103)], checkKeyPrefix(p(206), false)!],
    [["add-user", "alice", "--prefix", p(183)], checkKeyPrefix(p(183), true)!],
    [["add", "127.0.0.9", "--prefix", "a b"], checkKeyPrefix("a b", false)!],
    [["add", "127.0.0.9", "--value", ""], checkCanaryValue("")!],
    [["add", "127.0.0.9", "--value", "1\r\nset x 0 0 1"], checkCanaryValue("1\r\n")!],
    [["add-user", "alice", "--value", "a\nb"], checkCanaryValue("a\nb")!],
    [["migrate", "--value", ""], checkCanaryValue("")!],
    [["status", "--url", "not a url"], "--url takes an http:// URL"],
    [["explain", "127.0.0.9", "--url", "not a url"], "--url takes an http:// URL"],
    [["add", "127.0.0.9", "--memcached", "[::1"], "--memcached takes HOST:PORT"],
  ];
  for (const [args, says] of BAD) {
    it(`refuses ${JSON.stringify(args).slice(0, 70)}`, async () => {
      const before = await storeState();
      const r = await gray(args, env());
      expect(r.code, r.stderr).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(says);
      await expectNothingWritten(before);
    });
  }

  it("takes what configure takes, at the limits, and configure agrees", async () => {
    expect(typeof parseOptions({ key_prefix: p(205) })).toBe("object");
    expect(parseOptions({ key_prefix: p(206) })).toContain(checkKeyPrefix(p(206), false));
    expect(parseOptions({ key_prefix: p(183), user_header: "X-User" })).toContain(checkKeyPrefix(p(183), true));
    expect(parseOptions({ canary_value: "" })).toContain(checkCanaryValue(""));
    expect(parseOptions({ canary_value: "a\r\nb" })).toContain(checkCanaryValue("a\r\nb"));
    expect((await gray(["add", "127.0.0.9", "--prefix", p(205), "--init"], env())).code).toBe(0);
    expect((await gray(["add-user", "alice", "--prefix", p(182), "--value", "yes", "--init"], env())).code).toBe(0);
    const address = sharedMemcached().address;
    expect((await readRules(address, p(205)))!.ips).toEqual({ "127.0.0.9": "canary" });
    expect((await readRules(address, p(182)))!.users).toEqual({ alice: "canary" });
  });
});

describe("an IPv6 store address", () => {
  let memcached: MemcachedServer;
  beforeAll(async () => {
    memcached = await MemcachedServer.start(await testRuntime(), { ipv6: true });
  });
  afterAll(() => memcached?.stop());

  it("works as --memcached [::1]:PORT and as GRAY_MEMCACHED", async () => {
    const v6 = `[::1]:${memcached.port}`;
    const r = await gray(["add", "127.0.0.9", "--memcached", v6, "--init"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect((await gray(["weight", "7"], { GRAY_MEMCACHED: v6 })).code).toBe(0);
    const doc = await readRules(memcached.address);
    expect(doc!.ips).toEqual({ "127.0.0.9": "canary" });
    expect(weights(doc!)).toEqual({ canary: 7 });
  });
});

describe("a rules document that is not what it claims", () => {
  const env = () => ({ GRAY_MEMCACHED: sharedMemcached().address });

  async function expectRefused(says: string) {
    for (const args of [["list"], ["add", "127.0.0.9"], ["weight", "5", "--init"]]) {
      const r = await gray(args, env());
      expect(r.code, args.join(" ")).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stderr).toContain(says);
    }
  }

  it("a pointer that is not one: exit 1 naming the key, left as it is", async () => {
    await ctx.flags.set("gray:rules", "rules, trust me");
    await expectRefused(`gray:rules is not a rules pointer: "rules, trust me"`);
    expect(await ctx.flags.get("gray:rules")).toBe("rules, trust me");
  });

  it("a chunk that does not match its CRC, or text that is not a document: exit 1 naming it", async () => {
    await setWeight(sharedMemcached().address, "", 5);
    const pointer = parsePointer((await ctx.flags.get("gray:rules"))!)!;
    const key = chunkKey("", pointer, 0);
    const text = (await ctx.flags.get(key))!;
    // One copy wrong is read past (another matches the pointer); every copy wrong is refused.
    await ctx.flags.set(key, text.replace("canary", "canarx"));
    expect((await gray(["list"], env())).code).toBe(0);
    for (const copy of copyKeys(key)) await ctx.flags.set(copy, text.replace("canary", "canarx"));
    await expectRefused(`chunk ${key} does not match its CRC-32`);
    // A newer text whose CRC is right but which is no document (written by something else): refused, not
    // rewritten. (Not the same revision: a router holding that revision would write its own back over it.)
    const bogus = "gray-rules 1 5 0 0 0\nip 1.2.3.4 canary 0\nend 1\n";
    const forged = { ...pointer, revision: pointer.revision + 1, bytes: bogus.length, crcs: [crc32Text(bogus)] };
    await ctx.flags.set(chunkKey("", forged, 0), bogus);
    await ctx.flags.set("gray:rules", formatPointer(forged));
    await expectRefused(`is not a valid document: line 2: ip 1.2.3.4 names canary canary, not declared above it`);
  });
});

describe("the store client's commands against memcached", () => {
  it("add, gets and cas, touch, version, delete: each as memcached answered", async () => {
    const store = new AdminStore(sharedMemcached().address);
    try {
      expect(await store.add("k:cas", "a")).toBe(true);
      expect(await store.add("k:cas", "b")).toBe(false);
      const first = await store.gets("k:cas");
      expect(first?.value).toBe("a");
      expect(await store.cas("k:cas", "c", first!.cas)).toBe("stored");
      expect(await store.cas("k:cas", "d", first!.cas)).toBe("exists");
      expect(await store.get("k:cas")).toBe("c");
      expect(await store.touch("k:cas", 600)).toBe(true);
      expect(await store.touch("k:none", 600)).toBe(false);
      expect(await store.cas("k:none", "x", "1")).toBe("not_found");
      expect(await store.version()).toMatch(/^\d+\.\d+/);
      expect(await store.delete("k:cas")).toBe(true);
      expect(await store.delete("k:cas")).toBe(false);
      // A value is length-framed: line ends and UTF-8 inside it come back as stored.
      await store.set("k:text", "10.0.0.0/8\r\n2001:db8::/32 é");
      expect(await store.get("k:text")).toBe("10.0.0.0/8\r\n2001:db8::/32 é");
    } finally {
      store.close();
    }
  });

  it("runs the on-connect hook first, on the same connection (where -Y credentials will go)", async () => {
    const [host, port] = sharedMemcached().address.split(":");
    const seen: string[] = [];
    const connection = new TextConnection({
      host: host!,
      port: Number(port),
      timeoutMs: 2000,
      onConnect: async (c) => {
        seen.push(`hook ${await c.version()}`);
      },
    });
    try {
      expect(await connection.status("set k:hook 0 0 1", Buffer.from("1"), ["STORED"])).toBe("STORED");
      seen.push("set");
      expect(seen).toHaveLength(2);
      expect(seen[0]).toMatch(/^hook \d/);
    } finally {
      connection.close();
    }
  });
});
