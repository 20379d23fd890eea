/** Live counters: log() counts per route, /gray/status answers JSON and Prometheus text. */
import { describe, expect, it } from "vitest";
import { setTimeout as sleep } from "node:timers/promises";
import { get } from "../harness/http.ts";
import { SLOW_BACKEND_S } from "../harness/stack.ts";
import { Load, loopbackClients } from "../harness/load.ts";
import {
  type Histogram,
  LATENCY_LE,
  MAX_RELEASE_BYTES,
  type Status,
  latencyBucket,
  releaseKey,
  statusJson,
  statusPrometheus,
  sumTimes,
} from "../lua-src/gray/status.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { expectCleanLog, useRouter } from "./support.ts";
import { PATTERNS } from "../node-src/nginx-conf.ts";

describe("status rendering (the same code, as JavaScript)", () => {
  it("sums $upstream_response_time lists", () => {
    expect(sumTimes("0.004")).toBeCloseTo(0.004);
    expect(sumTimes("0.001, 0.003")).toBeCloseTo(0.004);
    expect(sumTimes("0.002 : 0.001, 0.001")).toBeCloseTo(0.004);
    expect(sumTimes("-")).toBe(0);
    expect(sumTimes("")).toBe(0);
  });

  it("reads each of nginx's times (%T.%03M) as exactly the double Number() reads", () => {
    for (const ms of [0, 1, 4, 10, 99, 100, 999, 1000, 1234, 12345, 59999, 86400000 + 7]) {
      const text = `${Math.floor(ms / 1000)}.${String(ms % 1000).padStart(3, "0")}`;
      expect(sumTimes(text), text).toBe(Number(text));
    }
    expect(sumTimes("12")).toBe(12);
    expect(sumTimes("1.5")).toBe(1.5);
    expect(sumTimes("1.5x1")).toBe(1.5 + 1);
    expect(sumTimes("x.004")).toBe(0.004);
  });

  it("puts a time in the first bucket whose bound it does not exceed (le is inclusive)", () => {
    expect(LATENCY_LE).toEqual([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(0.005)).toBe(0);
    expect(latencyBucket(0.0051)).toBe(1);
    expect(latencyBucket(0.051)).toBe(4);
    expect(latencyBucket(10)).toBe(10);
    expect(latencyBucket(10.001)).toBe(11);
  });

  it("escapes strings into valid JSON, and renders the histograms cumulatively for Prometheus", () => {
    const h = (counts: number[], sum: number): Histogram => ({
      counts: [...counts, ...Array<number>(12 - counts.length).fill(0)],
      sum,
      count: counts.reduce((a, b) => a + b, 0),
    });
    const status: Status = {
      routes: {
        stable: { requests: 1, responses_5xx: 0, upstream_seconds: 0.5, latency: h([0, 0, 0, 0, 0, 0, 1], 0.5) },
        canary: { requests: 2, responses_5xx: 1, upstream_seconds: 0, latency: h([2], 0.003) },
        beta: { requests: 3, responses_5xx: 0, upstream_seconds: 0.25, latency: h([1, 1, 0, 0, 0, 1], 0.25) },
      },
      route_names: ["stable", "canary", "beta"],
      latency_le: LATENCY_LE,
      rules: { override: 0, user: 0, ip: 2, range: 0, weight: 0, none: 1 },
      store: { hits: 1, misses: 2, fallbacks: 0 },
      store_errors: { lookup: 3, refresh: 1 },
      cache_evictions: 4,
      weight: 12.5,
      ranges: 1,
      canaries: {
        canary: { weight: 12.5, location: "@client_test", upstream: "client_test" },
        beta: { weight: 5, location: "@beta", upstream: "beta" },
      },
      stable_target: { location: "@client", upstream: "client" },
      document: {
        revision: 1764480000123,
        age_s: 9,
        source: "memcached",
        loaded_at: 1764480001,
        checked_at: 1764480010,
        bytes: 1234,
        entries: { ips: 2, ranges: 1, users: 0 },
        last_error: 'memcached said "no"',
        missing_since: undefined,
      },
      cache_dict: "gray_cache",
      memcached: "127.0.0.1:11211",
      config: {
        key_prefix: 'a"b\\c',
        canary_value: "\u0001",
        ranges: ["10.0.0.0/8"],
        weight: 0,
        user_header: "X-User",
        ip_keys: true,
        canaries: { beta: { location: "@beta", upstream: "beta" } },
      },
    };
    expect(JSON.parse(statusJson(status))).toEqual({
      ...status,
      document: { ...status.document, missing_since: null },
      release: null,
      release_error: null,
    });
    // The release comes as the nginx side encoded it, or as why it is not shown.
    const release = { canary: "canary", step: 2, steps: [10, 50, 100] };
    expect(JSON.parse(statusJson(status, { json: JSON.stringify(release), error: undefined }))).toMatchObject({
      release,
      release_error: null,
    });
    expect(JSON.parse(statusJson(status, { json: undefined, error: 'unreadable: "x"' }))).toMatchObject({
      release: null,
      release_error: 'unreadable: "x"',
    });
    const prometheus = statusPrometheus(status);
    expect(prometheus).toContain('gray_requests_total{route="canary"} 2\n');
    // Lookups are a partition (no failure counted among them twice); failures have their own counter.
    expect(prometheus).toContain(
      'gray_store_lookups_total{result="hits"} 1\ngray_store_lookups_total{result="misses"} 2\ngray_store_lookups_total{result="fallbacks"} 0\n',
    );
    expect(prometheus).toContain(
      'gray_store_errors_total{operation="lookup"} 3\ngray_store_errors_total{operation="refresh"} 1\n',
    );
    expect(prometheus).toContain("gray_cache_evictions_total 4\n");
    expect(prometheus).toContain('gray_requests_total{route="beta"} 3\n');
    expect(prometheus).toContain(
      'gray_canary_weight_percent{canary="canary"} 12.5\ngray_canary_weight_percent{canary="beta"} 5\n',
    );
    expect(prometheus).toContain("gray_rules_revision 1764480000123\n");
    expect(prometheus).toContain("gray_rules_problem 1\n");
    expect(prometheus).toContain("# TYPE gray_upstream_response_seconds histogram\n");
    const beta = prometheus
      .split("\n")
      .filter((l) => l.startsWith('gray_upstream_response_seconds_bucket{route="beta"'));
    expect(beta.map((l) => l.replace(/^.*le="([^"]+)"\} /, "$1 "))).toEqual([
      "0.005 1",
      "0.01 2",
      "0.025 2",
      "0.05 2",
      "0.1 2",
      "0.25 3",
      "0.5 3",
      "1 3",
      "2.5 3",
      "5 3",
      "10 3",
      "+Inf 3",
    ]);
    expect(prometheus).toContain(
      'gray_upstream_response_seconds_sum{route="beta"} 0.25\ngray_upstream_response_seconds_count{route="beta"} 3\n',
    );
  });
});

// Every case runs through both drop-in patterns: route_upstream() + proxy_pass, and route() + ngx.exec.
describe.each(PATTERNS)("%s pattern", (pattern) => {
  describe("counters in nginx", () => {
    const ctx = useRouter({ pattern, options: { debug_header: "X-Gray-Route" } });

    it("counts requests, 5xx and upstream time per route, and decisions per rule", async () => {
      await ctx.flags.set("127.0.5.2");
      for (let i = 0; i < 5; i++) expect((await get(ctx.router.url, { from: "127.0.5.1" })).status).toBe(200);
      // The canary's backend takes SLOW_BACKEND_S to answer each of these: its upstream time must show it.
      for (let i = 0; i < 3; i++) expect((await get(`${ctx.router.url}/slow`, { from: "127.0.5.2" })).status).toBe(200);
      expect((await get(`${ctx.router.url}/fail`, { from: "127.0.5.2" })).status).toBe(500);
      const s = await fetchStatus(ctx.router.statusUrl);
      expect(s.routes.stable!.requests).toBe(5);
      expect(s.routes.stable!.responses_5xx).toBe(0);
      expect(s.routes.canary!.requests).toBe(4);
      expect(s.routes.canary!.responses_5xx).toBe(1);
      // nginx reports upstream times in milliseconds; the slow answers bound the canary's sum from below.
      expect(s.routes.canary!.upstream_seconds).toBeGreaterThanOrEqual(3 * SLOW_BACKEND_S - 0.003);
      expect(s.routes.canary!.upstream_seconds).toBeLessThan(3 * SLOW_BACKEND_S + 0.5);
      expect(s.routes.stable!.upstream_seconds).toBeLessThan(0.5);
      // The histogram: the slow answers in (0.025, 0.1] (nginx gives milliseconds: 0.050 is le 0.05), the others in the first buckets.
      expect(s.latency_le).toEqual(LATENCY_LE);
      expect(s.routes.canary!.latency.count).toBe(4);
      expect(s.routes.canary!.latency.counts[3]! + s.routes.canary!.latency.counts[4]!).toBe(3);
      expect(s.routes.canary!.latency.counts.slice(0, 3).reduce((a, b) => a + b)).toBe(1);
      expect(s.routes.canary!.latency.sum).toBeCloseTo(s.routes.canary!.upstream_seconds, 6);
      expect(s.routes.stable!.latency.count).toBe(5);
      expect(s.routes.stable!.latency.counts.slice(0, 3).reduce((a, b) => a + b)).toBe(5);
      expect(s.rules.ip).toBe(4);
      expect(s.rules.none).toBe(5);
      expect(s.store.misses).toBeGreaterThanOrEqual(2);
      // Each decision here took one flag lookup (no user rule, weight 0): lookups add up to decisions.
      expect(s.store.hits + s.store.misses + s.store.fallbacks).toBe(9);
      expect(s.store_errors).toEqual({ lookup: 0, refresh: 0 });
      expect(s.cache_dict).toBe("gray_cache");
      expect(s.config.canary_value).toBe("1");
    });

    it("answers Prometheus text with ?format=prometheus", async () => {
      const reply = await get(`${ctx.router.statusUrl}?format=prometheus`);
      expect(reply.status).toBe(200);
      expect(reply.headers["content-type"]).toContain("text/plain");
      // The same counts as the JSON (nothing is routed in between).
      const s = await fetchStatus(ctx.router.statusUrl);
      expect(reply.body).toMatch(
        new RegExp(`^gray_requests_total\\{route="stable"\\} ${s.routes.stable!.requests}$`, "m"),
      );
      expect(reply.body).toMatch(
        new RegExp(`^gray_requests_total\\{route="canary"\\} ${s.routes.canary!.requests}$`, "m"),
      );
      expect(reply.body).toMatch(new RegExp(`^gray_store_lookups_total\\{result="hits"\\} ${s.store.hits}$`, "m"));
      expect(s.routes.stable!.requests).toBeGreaterThan(0);
      expect(reply.body).toMatch(/^# TYPE gray_weight_percent gauge$/m);
      const c = s.routes.canary!.latency;
      expect(reply.body).toMatch(
        new RegExp(`^gray_upstream_response_seconds_bucket\\{route="canary",le="\\+Inf"\\} ${c.count}$`, "m"),
      );
      expect(reply.body).toMatch(
        new RegExp(`^gray_upstream_response_seconds_bucket\\{route="canary",le="0\\.1"\\} ${c.count}$`, "m"),
      );
      expect(reply.body).toMatch(
        new RegExp(`^gray_upstream_response_seconds_count\\{route="canary"\\} ${c.count}$`, "m"),
      );
    });

    it("reports the running release from memcached, and unreadable content as null and why", async () => {
      const key = releaseKey("");
      /** /gray/status once the router's timer has read the key (every cache_ttl_ms, 500 ms here). */
      const shows = async (want: (s: Status) => boolean) => {
        const deadline = Date.now() + 3000;
        let s = await fetchStatus(ctx.router.statusUrl);
        while (!want(s) && Date.now() < deadline) {
          await sleep(100);
          s = await fetchStatus(ctx.router.statusUrl);
        }
        return s;
      };
      expect(await shows((s) => s.release === null)).toMatchObject({ release: null, release_error: null });
      const state = { format: 1, canary: "canary", steps: [10, 50], step: 1, weight: 10, note: 'a "b"\n\u0001' };
      await ctx.flags.set(key, JSON.stringify(state));
      expect((await shows((s) => s.release !== null)).release).toEqual(state);
      // Raw control characters (which cjson reads) come out escaped: the answer is still JSON.
      await ctx.flags.set(key, '{"canary":"x\ny","n":1.}');
      const lenient = await shows((s) => s.release?.canary !== "canary");
      expect(lenient.release === null ? lenient.release_error : lenient.release).toBeTruthy();
      for (const [bad, why] of [
        ['{"canary": ', "not JSON"],
        ["[1, 2]", "not a JSON object"],
        ["x".repeat(MAX_RELEASE_BYTES + 1), `${MAX_RELEASE_BYTES + 1} bytes`],
        [Buffer.from([0x7b, 0xff, 0xfe]), "not JSON"],
      ] as const) {
        await ctx.flags.set(key, bad);
        const s = await shows((x) => x.release === null && x.release_error?.includes(why) === true);
        expect(s.release).toBeNull();
        expect(s.release_error).toContain(why);
      }
      await ctx.flags.delete(key);
      expect(await shows((s) => s.release_error === null)).toMatchObject({ release: null, release_error: null });
      // Prometheus text has no release: it stays as it was.
      expect((await get(`${ctx.router.statusUrl}?format=prometheus`)).body).not.toContain("release");
    });

    it("names the rule in <debug_header>-Rule", async () => {
      const reply = await get(ctx.router.url, { from: "127.0.5.3" });
      expect(reply.headers["x-gray-route"]).toBe("stable");
      expect(reply.headers["x-gray-route-rule"]).toBe("none");
    });

    it("leaves error.log clean", () => expectCleanLog(ctx.router));

    // Last: nginx logs the refusal as an [error] line.
    it("is not served to other addresses", async () => {
      expect((await get(ctx.router.statusUrl, { from: "127.0.5.4" })).status).toBe(403);
    });
  });

  describe("without a lua_shared_dict", () => {
    const ctx = useRouter({ pattern, noCacheDict: true });

    it("still routes, and /gray/status says what is missing", async () => {
      await ctx.flags.set("127.0.5.5");
      expect((await get(ctx.router.url, { from: "127.0.5.5" })).body.trim()).toBe("canary");
      const reply = await get(ctx.router.statusUrl);
      expect(reply.status).toBe(503);
      expect(reply.body).toContain("lua_shared_dict gray_cache");
    });
  });

  describe("without the log_by_lua line", () => {
    const ctx = useRouter({ pattern, counters: false });

    it("routes, counts decisions, and turns route counting off once, with one warning", async () => {
      // The router learns that log() is not attached after 100,000 routed requests it never saw logged.
      const summary = await Load.start({
        url: ctx.router.url,
        sources: loopbackClients(32, 104),
        durationMs: 60000,
        maxRequests: 101000,
      }).done();
      expect(summary.sent).toBeGreaterThanOrEqual(101000);
      expect(summary.failed).toBe(0);
      const more = await Load.start({
        url: ctx.router.url,
        sources: loopbackClients(4, 104),
        durationMs: 10000,
        maxRequests: 2000,
      }).done();
      expect(more.failed).toBe(0);
      await sleep(1100); // counters reach the dict once a second
      const s = await fetchStatus(ctx.router.statusUrl);
      expect(s.rules.none).toBeGreaterThanOrEqual(summary.sent + more.sent);
      expect(s.routes.stable!.requests).toBe(0);
      // Store warnings may come and go on a busy machine (50 ms timeouts); this is about log().
      const warnings = ctx.router
        .errorLog()
        .split("\n")
        .filter((l) => l.includes("gray.router:") && l.includes("log()"));
      expect(warnings, warnings.join("\n")).toHaveLength(1);
      expect(warnings[0]).toContain("log() never ran in this worker");
      expectCleanLog(ctx.router);
    }, 90000);
  });
});
