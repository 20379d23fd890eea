/**
 * What the router reads from memcached is hostile input too: rules documents mutated at random
 * (with CRCs that match, so the reader itself is tried) and pointers that are not pointers. The
 * router must answer every request, log no error, and adopt a revision exactly when the reader the
 * CLI runs (the same code, as JavaScript) accepts it — else keep the last good one.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { copyKeys, formatPointer, parseDocument, pointerKey } from "../lua-src/gray/document.ts";
import { get } from "../harness/http.ts";
import { logProblems } from "../harness/nginx.ts";
import { type Random, seededRandom } from "../harness/random.ts";
import { flagIps, setWeight } from "../harness/rules.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { withStore } from "../node-src/cli/store.ts";
import { crc32Text } from "../node-src/rules/format.ts";
import { readCurrent } from "../node-src/rules/revisions.ts";
import { useOwnStore } from "./support.ts";

const TTL_MS = 100;
const MUTANTS = 60;
const FLAGGED = "127.0.12.1";

/** One random change to the text: a byte, a cut, a line doubled or dropped, a number blown up. */
function mutate(text: string, r: Random): string {
  const at = r.int(text.length);
  switch (r.int(6)) {
    case 0:
      return text.slice(0, at) + String.fromCharCode(r.int(256)) + text.slice(at + 1);
    case 1:
      return text.slice(0, at);
    case 2: {
      const lines = text.split("\n");
      const i = r.int(lines.length);
      lines.splice(i, 0, lines[i]!);
      return lines.join("\n");
    }
    case 3: {
      const lines = text.split("\n");
      lines.splice(r.int(lines.length), 1);
      return lines.join("\n");
    }
    case 4:
      return text.replace(/\d+/, r.pick(["99999999999999999999", "-1", "0", "4294967296", "1e9"]));
    default:
      return text.replace(/ /, r.pick(["  ", "", "\t", " \u00e9 "]));
  }
}

describe("hostile store content", () => {
  const ctx = useOwnStore({
    canaries: ["beta"],
    options: { cache_ttl_ms: TTL_MS, ip_keys: false, max_rules_bytes: 100000 },
  });

  /** Writes `text` as revision `revision` with matching CRCs: the chunk, then every pointer copy. */
  async function writeRaw(revision: number, text: string): Promise<void> {
    const pointer = { revision, nonce: "f0f0f0f0", bytes: Buffer.byteLength(text, "latin1"), crcs: [crc32Text(text)] };
    await ctx.flags.set(`gray:rules:${revision}:f0f0f0f0:0`, Buffer.from(text, "latin1"));
    for (const key of copyKeys(pointerKey(""))) await ctx.flags.set(key, formatPointer(pointer));
  }

  async function revisionInForce(): Promise<number | null | undefined> {
    return (await fetchStatus(ctx.router.statusUrl)).document.revision;
  }

  it(`adopts a mutated document exactly when the CLI's reader accepts it (${MUTANTS} mutants), answering every request`, async () => {
    await flagIps(ctx.memcached.address, "", [FLAGGED]);
    await setWeight(ctx.memcached.address, "", 20, "beta");
    const good = (await withStore(ctx.memcached.address, (s) => readCurrent(s, "")))!;
    const source = (await withStore(ctx.memcached.address, async (s) =>
      s.get(`gray:rules:${good.pointer!.revision}:${good.pointer!.nonce}:0`),
    ))!;
    // A worker starts its rules timer on its first request.
    for (let tries = 0; (await revisionInForce()) !== good.doc.revision; tries++) {
      expect(tries, "the good revision loads").toBeLessThan(50);
      await get(ctx.router.url, { from: FLAGGED });
      await sleep(TTL_MS);
    }
    const r = seededRandom(4242);
    let inForce = good.doc.revision;
    let adopted = 0;
    for (let i = 0; i < MUTANTS; i++) {
      const revision = inForce + 1 + i;
      const text = mutate(source.replace(String(good.doc.revision), String(revision)), r);
      const accepted = typeof parseDocument(text) !== "string" && Buffer.byteLength(text, "latin1") <= 100000;
      await writeRaw(revision, text);
      await sleep(TTL_MS * 3);
      const reply = await get(ctx.router.url, { from: FLAGGED });
      expect(reply.status, `mutant ${i}`).toBe(200);
      const now = await revisionInForce();
      if (accepted) {
        expect(now, `mutant ${i} is a valid document: ${JSON.stringify(text)}`).toBe(revision);
        inForce = revision;
        adopted++;
      } else {
        expect(now, `mutant ${i} is refused: ${JSON.stringify(text.slice(0, 60))}`).toBe(inForce);
      }
    }
    console.log(`${MUTANTS} mutants: ${adopted} valid and adopted, ${MUTANTS - adopted} refused`);
    expect(adopted).toBeLessThan(MUTANTS);
  });

  it("pointers that are not pointers, and a document over max_rules_bytes: the revision is kept", async () => {
    const before = await revisionInForce();
    const garbage = [
      "",
      "1",
      "1 x y z",
      "1 99999999999999999999 a 1 1",
      "\u0000\u00ff",
      "2 1 a 1 1",
      `1 9 ${"n".repeat(17)} 1 1`,
    ];
    for (const text of garbage) {
      for (const key of copyKeys(pointerKey(""))) await ctx.flags.set(key, text);
      await sleep(TTL_MS * 3);
      expect((await get(ctx.router.url, { from: FLAGGED })).status).toBe(200);
      expect(await revisionInForce()).toBe(before);
    }
    const big = `gray-rules 1 ${Date.now() + 10 ** 9} 0 0 0\n${"history 1 1 x - y\n".repeat(7000)}end 0\n`;
    await writeRaw(Date.now() + 10 ** 9, big);
    await sleep(TTL_MS * 3);
    expect(await revisionInForce()).toBe(before);
    expect((await fetchStatus(ctx.router.statusUrl)).document.last_error).toMatch(/max_rules_bytes/);
  });

  it("logs warnings, never an error", () => {
    expect(logProblems(ctx.router.errorLog())).toEqual([]);
    expect(ctx.router.errorLog()).toContain("gray.router: revision");
  });
});
