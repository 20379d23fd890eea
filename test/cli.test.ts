/** The `gray` CLI as a separate process: what it writes to memcached, its output and its exit codes. */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { gray } from "../harness/gray-cli.ts";
import { closeAgents } from "../harness/http.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { flagUsers, readRules } from "../harness/rules.ts";
import {
  cliEnv,
  expectNothingWritten,
  routeOf,
  sharedMemcached,
  storeState,
  storedKeys,
  useRouter,
} from "./support.ts";
import { COMMANDS } from "../node-src/cli/commands/index.ts";
import type { Listing } from "../node-src/cli/commands/list.ts";

describe("gray CLI", () => {
  const ctx = useRouter({ options: { user_header: "X-User", cache_ttl_ms: 100 } });
  const env = cliEnv;
  const keys = storedKeys;
  const rules = () => readRules(sharedMemcached().address);
  /** The router has loaded what the CLI wrote (it checks every cache_ttl_ms). */
  const loaded = () => sleep(400);

  it("writes IPs into the document as nginx prints them, IPv6 too, and the router routes by them", async () => {
    const r = await gray(["add", "203.0.113.7", "2001:DB8:0:0::1", "127.0.6.1", "--ttl", "600"], env());
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const doc = (await rules())!;
    expect(Object.keys(doc.ips).sort()).toEqual(["127.0.6.1", "2001:db8::1", "203.0.113.7"]);
    expect(doc.ipExpires["2001:db8::1"]).toBeGreaterThan(Date.now() / 1000 + 590);
    await loaded();
    expect(await routeOf(ctx.router.url, { from: "127.0.6.1" })).toBe("canary");
  });

  it("keeps ranges normalised, and removes them again", async () => {
    expect((await gray(["add", "198.51.100.7/24", "2001:db8:a::/48"], env())).code).toBe(0);
    expect((await gray(["add", "198.51.100.0/24"], env())).code).toBe(0);
    expect(Object.keys((await rules())!.ranges).sort()).toEqual(["198.51.100.0/24", "2001:db8:a::/48"]);
    expect((await gray(["remove", "198.51.100.0/24"], env())).code).toBe(0);
    expect(Object.keys((await rules())!.ranges)).toEqual(["2001:db8:a::/48"]);
    expect((await gray(["remove", "2001:db8:a::/48"], env())).code).toBe(0);
    expect((await rules())!.ranges).toEqual({});
  });

  it("adds and removes users; a flagged user is routed to canary", async () => {
    expect((await gray(["add-user", "alice", "bob@example.org"], env())).code).toBe(0);
    expect((await rules())!.users).toEqual({ alice: "canary", "bob@example.org": "canary" });
    await loaded();
    expect(await routeOf(ctx.router.url, { from: "127.0.6.2", headers: { "X-User": "alice" } })).toBe("canary");
    expect((await gray(["remove-user", "alice"], env())).code).toBe(0);
    expect((await rules())!.users).toEqual({ "bob@example.org": "canary" });
  });

  it("lists IPs, users, ranges and the weight per canary, as text and JSON", async () => {
    await gray(["add", "203.0.113.9", "2001:db8::9", "10.9.0.0/16"], env());
    await gray(["add-user", "carol"], env());
    await gray(["weight", "12.5"], env());
    const json = await gray(["list", "--json"], env());
    expect(json.code).toBe(0);
    const listed = (JSON.parse(json.stdout) as Listing).canaries.canary!;
    expect(listed.ips.map((i) => i.subject).sort()).toEqual(["2001:db8::9", "203.0.113.9"]);
    expect(listed.users.map((u) => u.subject)).toEqual(["carol"]);
    expect(listed.ranges.map((r) => r.subject)).toEqual(["10.9.0.0/16"]);
    expect(listed.weight).toBe(12.5);
    const text = (await gray(["list"], env())).stdout;
    expect(text).toContain("12.5 %");
    expect(text).toContain("2001:db8::9");
  });

  it("shows and sets the weight", async () => {
    expect((await gray(["weight", "25%"], env())).stdout).toMatch(/^canary weight 25 % \(was 0 %\), revision \d+$/m);
    expect((await gray(["weight"], env())).stdout).toContain("canary  25 %");
    expect((await rules())!.canaries.canary!.buckets).toEqual([0, 25000]);
  });

  it("uses --prefix for the document's keys", async () => {
    expect((await gray(["add", "203.0.113.11", "--prefix", "app1:", "--init"], env())).code).toBe(0);
    expect((await gray(["add-user", "dave", "--prefix", "app1:"], env())).code).toBe(0);
    expect((await gray(["weight", "3", "--prefix", "app1:"], env())).code).toBe(0);
    const doc = (await readRules(sharedMemcached().address, "app1:"))!;
    expect([Object.keys(doc.ips), Object.keys(doc.users), doc.canaries.canary!.buckets]).toEqual([
      ["203.0.113.11"],
      ["dave"],
      [0, 3000],
    ]);
    expect((await keys()).filter((k) => k.startsWith("app1:")).every((k) => /^app1:(~\d:)?gray:rules/.test(k))).toBe(
      true,
    );
  });

  const BAD: string[][] = [
    ["add", "10.0.0.300"],
    ["add", "203.0.113.5", "10.0.0.0/33"],
    ["add", "203.0.113.5", "--ttl", "-5"],
    ["add"],
    ["remove", "nonsense"],
    ["add-user", ""],
    ["add-user", "ok", "not ok"],
    ["add-user", "x".repeat(65)],
    ["weight", "101"],
    ["weight", "-1"],
    ["weight", "abc"],
    ["explain", "999.1.1.1"],
    ["release", "--steps", "10,5"],
    ["release", "--steps", "1,abc"],
    ["release", "--interval", "0s"],
    ["release", "--interval", "soon"],
    ["release", "--max-error-rate", "150%"],
    ["release", "--status-url", "not a url"],
    ["release", "50"],
    ["upgrade"],
    ["upgrade", "--pid-file", "/run/nginx.pid", "--health-url", "ftp://127.0.0.1/"],
    ["add", "203.0.113.5", "--bogus"],
    ["add", "203.0.113.5", "--memcached", "nohostport"],
    ["frobnicate"],
  ];
  for (const args of BAD) {
    it(`refuses ${JSON.stringify(args).slice(0, 60)} with exit 2, one line, nothing written`, async () => {
      const before = await storeState();
      const r = await gray(args, env());
      expect(r.code).toBe(2);
      if (args[0] !== "frobnicate") expect(r.stderr.trim().split("\n")).toHaveLength(1);
      expect(r.stdout).toBe("");
      await expectNothingWritten(before);
    });
  }

  it("exits 1 naming the address when memcached is unreachable", async () => {
    const r = await gray(["add", "203.0.113.5"], { GRAY_MEMCACHED: "127.0.0.1:1" });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("127.0.0.1:1");
    const s = await gray(["status", "--url", "http://127.0.0.1:1/gray/status"]);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain("http://127.0.0.1:1/gray/status");
  });

  it("has --help on every command", async () => {
    const help = (await gray(["--help"])).stdout;
    for (const { name: command } of COMMANDS) {
      expect(help, command).toContain(`gray ${command}`);
      const r = await gray([command, "--help"]);
      expect(r.code, command).toBe(0);
      expect(r.stdout).toContain(`usage: gray ${command}`);
      expect(r.stdout).toContain("--memcached");
    }
  });

  it("explains with the router's own options, and status shows its counters", async () => {
    await ctx.flags.set("127.0.6.5");
    await closeAgents();
    const url = ctx.router.statusUrl;
    const flagged = JSON.parse((await gray(["explain", "127.0.6.5", "--url", url, "--json"], env())).stdout) as unknown;
    expect(flagged).toMatchObject({ route: "canary", rule: "ip" });
    await flagUsers(sharedMemcached().address, "", ["erin"]);
    const user = await gray(["explain", "203.0.113.99", "--user", "erin", "--url", url], env());
    expect(user.stdout).toMatch(/^canary {2}\(rule user: user erin is flagged/);
    await loaded();
    // One routed request of each kind, then the text must show the router's own figures.
    expect(await routeOf(ctx.router.url, { from: "127.0.6.5" })).toBe("canary");
    expect(await routeOf(ctx.router.url, { from: "127.0.6.6" })).toBe("stable");
    await sleep(1100); // every worker has flushed its counters
    const counted = await fetchStatus(url);
    const status = await gray(["status", "--url", url], env());
    expect(status.code).toBe(0);
    for (const route of ["canary", "stable"] as const) {
      const { requests, responses_5xx } = counted.routes[route]!;
      expect(requests, route).toBeGreaterThan(0);
      expect(status.stdout).toMatch(new RegExp(`^${route}\\s+${requests}\\s+${responses_5xx}\\s`, "m"));
    }
  });
});
