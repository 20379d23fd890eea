/**
 * The status page: its arithmetic as JavaScript (rates from successive answers, a counter going down
 * read as a reset, p99 from the buckets, untrusted release content), its embedding in the build's
 * Lua, and the page itself in headless Chromium (Debian's, through playwright-core) against a router
 * under load from two client groups, on both drop-in patterns: what it shows is what /gray/status
 * says, its charts move as traffic flows, the running release in memcached shows on it, its CSP
 * lets its own script and style run and nothing else, and JSON and Prometheus stay as they were.
 * A failed browser check saves a screenshot under the file's temp dir and prints its path.
 */
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PageProblems, launchBrowser, watchedPage } from "../harness/browser.ts";
import { get } from "../harness/http.ts";
import { Load, loopbackClients } from "../harness/load.ts";
import { flagIps, setWeight } from "../harness/rules.ts";
import { LUA_DIR } from "../harness/paths.ts";
import {
  type Histogram,
  LATENCY_LE,
  MAX_RELEASE_BYTES,
  type RouteCounts,
  type Status,
} from "../lua-src/gray/status.ts";
import { quantile as cliQuantile } from "../node-src/cli/latency.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { PATTERNS } from "../node-src/nginx-conf.ts";
import { buildPage, luaLongString, statusPageModule } from "../node-src/write-status-page.ts";
import {
  History,
  counterIncrease,
  niceMax,
  quantile,
  releasePanel,
  routeIncrease,
  seriesPath,
} from "../page/status.ts";
import { releaseAtStep2 } from "./status-fixtures.ts";
import { expectCleanLog, sharedMemcached, useRouter } from "./support.ts";

const histogram = (counts: number[]): Histogram => {
  const full = [...counts, ...Array<number>(LATENCY_LE.length + 1 - counts.length).fill(0)];
  return { counts: full, sum: 0, count: full.reduce((a, b) => a + b, 0) };
};
const route = (requests: number, errors: number, counts: number[]): RouteCounts => ({
  requests,
  responses_5xx: errors,
  upstream_seconds: 0,
  latency: histogram(counts),
});
/** An answer with these routes (the rest of the shape as a router gives it). */
function answer(routes: Record<string, RouteCounts>, rules: Partial<Status["rules"]> = {}): Status {
  return {
    routes,
    latency_le: LATENCY_LE,
    route_names: Object.keys(routes),
    rules: { override: 0, user: 0, ip: 0, range: 0, weight: 0, none: 0, ...rules },
    store: { hits: 0, misses: 0, fallbacks: 0 },
    store_errors: { lookup: 0, refresh: 0 },
    cache_evictions: 0,
    weight: 0,
    ranges: 0,
    canaries: {},
    stable_target: { location: "@client", upstream: "client" },
    document: {
      revision: undefined,
      age_s: undefined,
      source: undefined,
      loaded_at: undefined,
      checked_at: undefined,
      bytes: 0,
      entries: { ips: 0, ranges: 0, users: 0 },
      last_error: undefined,
      missing_since: undefined,
    },
    cache_dict: "gray_cache",
    memcached: "127.0.0.1:11211",
    config: { key_prefix: "", canary_value: "1", ranges: [], weight: 0, ip_keys: true, canaries: {} },
  };
}

describe("the page's arithmetic (page/status.ts, as JavaScript)", () => {
  it("takes a counter that went down as reset: its new value is the increase, never a negative one", () => {
    expect(counterIncrease(10, 25)).toBe(15);
    expect(counterIncrease(25, 4)).toBe(4);
    expect(counterIncrease(undefined, 7)).toBe(7);
    // A route's counters are reset together: one going down means all were.
    expect(routeIncrease(route(100, 5, [90, 10]), route(130, 6, [118, 12]))).toEqual({
      requests: 30,
      errors: 1,
      counts: [28, 2, ...Array<number>(10).fill(0)],
    });
    expect(routeIncrease(route(100, 5, [90, 10]), route(3, 0, [3]))).toEqual({
      requests: 3,
      errors: 0,
      counts: [3, ...Array<number>(11).fill(0)],
    });
  });

  it("gives rates over the window from successive answers, through a restart", () => {
    const h = new History(5, 900);
    const at = (s: number) => s * 1000;
    expect(h.add(answer({ stable: route(0, 0, []), canary: route(0, 0, []) }), at(0))).toBeUndefined();
    // 100 req/s on stable, 10 on canary, 1 of the canary's a 5xx each second.
    let point: ReturnType<History["add"]>;
    for (let s = 1; s <= 5; s++)
      point = h.add(
        answer({ stable: route(100 * s, 0, [100 * s]), canary: route(10 * s, s, [10 * s]) }, { none: 100 * s }),
        at(s),
      );
    expect(point!.routes.stable!.rps).toBeCloseTo(100);
    expect(point!.routes.canary!.rps).toBeCloseTo(10);
    expect(point!.routes.canary!.errorsPerS).toBeCloseTo(1);
    expect(point!.routes.canary!.errorShare).toBeCloseTo(10);
    expect(point!.routes.stable!.errorShare).toBe(0);
    expect(point!.rules.none).toBeCloseTo(100);
    // Every observation in the first bucket (≤ 5 ms): p99 within it, as `gray status` computes it.
    expect(point!.routes.stable!.p99Ms).toBeCloseTo(1000 * cliQuantile(histogram([500]), 0.99)!);
    // nginx restarts: the counters start again from 0 and have reached 50 / 5 a second later.
    point = h.add(answer({ stable: route(50, 0, [50]), canary: route(5, 0, [5]) }), at(6));
    for (const p of h.points) for (const f of Object.values(p.routes)) expect(f.rps).toBeGreaterThanOrEqual(0);
    // The window (5 s) holds four 100 req/s seconds and the one after the restart (50).
    expect(point!.routes.stable!.rps).toBeCloseTo((4 * 100 + 50) / 5);
    expect(h.points).toHaveLength(6);
  });

  it("keeps its history bounded", () => {
    const h = new History(5, 10);
    for (let s = 0; s < 30; s++) h.add(answer({ stable: route(s, 0, [s]) }), s * 1000);
    expect(h.points).toHaveLength(10);
    expect(h.points[0]!.at).toBe(20000);
  });

  it("computes p99 as `gray status` does (node-src/cli/latency.ts)", () => {
    for (const counts of [[100], [0, 0, 0, 98, 2], [50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3], [1, 1, 1, 1, 1, 1, 1, 1]]) {
      expect(quantile(histogram(counts).counts, 0.99, LATENCY_LE)).toBeCloseTo(cliQuantile(histogram(counts), 0.99)!);
    }
    expect(quantile(histogram([]).counts, 0.99, LATENCY_LE)).toBeUndefined();
  });

  it("draws a path with one point per value, breaking the line where a value is missing", () => {
    const times = [0, 1000, 2000, 3000];
    expect(seriesPath(times, [1, 2, undefined, 4], 4).points).toBe(3);
    expect(seriesPath(times, [1, 2, undefined, 4], 4).d.match(/M/g)).toHaveLength(2);
    expect(seriesPath(times, [0, 0, 0, 0], 1).d).toMatch(/^M[\d.]+ [\d.]+(L[\d.]+ [\d.]+){3}$/);
    expect([niceMax(0, 1), niceMax(3, 1), niceMax(120, 1), niceMax(0.3, 1)]).toEqual([1, 5, 200, 1]);
  });

  it("reads the release key as untrusted: any shape, empty lists encoded as {}, stale, unreadable", () => {
    const now = 1_800_000_000_000;
    expect(releasePanel(undefined, undefined, now).headline).toContain("does not report releases");
    expect(releasePanel(null, null, now)).toMatchObject({ headline: "no release running", tone: "muted" });
    expect(releasePanel(null, "unreadable: not JSON (x)", now)).toMatchObject({ tone: "bad" });
    expect(releasePanel(null, "unreadable: not JSON (x)", now).headline).toContain("unreadable: not JSON");
    const running = releasePanel(
      {
        canary: "canary",
        steps: [10, 50, 100],
        step: 2,
        weight: 50,
        state: "running",
        control: "run",
        owner: "ops@host",
        pid: 42,
        started_at: now - 90_000,
        lease_until: now + 10_000,
        verdicts: {},
      },
      null,
      now,
    );
    expect(running).toMatchObject({ headline: "release of canary: step 2/3, running", tone: "good" });
    expect(Object.fromEntries(running.rows)).toMatchObject({
      step: "step 2/3, weight 50 %",
      owner: "ops@host (pid 42)",
    });
    const stale = releasePanel({ canary: "beta", step: 1, steps: [5], lease_until: now - 60_000 }, null, now);
    expect(stale.tone).toBe("bad");
    expect(stale.headline).toContain("STALE");
    // Nothing of the expected shape: shown as unknowns, never an exception.
    for (const hostile of [{}, { steps: "x", step: "2", verdicts: [null, 3], samples: [1] }, { canary: { a: 1 } }])
      expect(() => releasePanel(hostile, null, now)).not.toThrow();
  });
});

describe("the page in the build", () => {
  it("inlines the script and names the hashes of its one script and one style in the CSP", () => {
    const html =
      '<!-- the <style> and <script> -->\n<style>b{}</style><script type="module" src="./status.js"></script>';
    const page = buildPage(html, "export const x = 1;\n//# sourceMappingURL=status.js.map\n");
    expect(page.html).toBe('<style>b{}</style><script type="module">export const x = 1;\n\n</script>');
    const hash = (s: string) => createHash("sha256").update(s).digest("base64");
    expect(page.csp).toContain(`script-src 'sha256-${hash("export const x = 1;\n\n")}'`);
    expect(page.csp).toContain(`style-src 'sha256-${hash("b{}")}'`);
    expect(page.csp).toContain("connect-src 'self'");
    expect(() => buildPage(html, 'import { y } from "./y.js";')).toThrow(/imports/);
    expect(() => buildPage(html, 'const s = "</script>";')).toThrow(/<\/script/);
    expect(() => buildPage(`${html}<style>i{}</style>`, "")).toThrow(/one <style>/);
    expect(() => buildPage(`${html}<p style="color: red">`, "")).toThrow(/style attribute/);
    expect(() => buildPage(`${html}<script>alert(1)</script>`, "")).toThrow(/no script/);
  });

  it("writes a Lua module that returns the page byte for byte, whatever brackets it holds", () => {
    const dir = mkdtempSync(join(tmpdir(), "gray-page-"));
    const html = "<p>]]</p>\n]=] ]==]\n\nend";
    writeFileSync(join(dir, "m.lua"), statusPageModule({ html, csp: "default-src 'self'" }));
    const out = execFileSync("lua5.1", ["-e", `local m = dofile("${dir}/m.lua") io.write(m.csp, "\\0", m.html)`], {
      encoding: "utf8",
    });
    rmSync(dir, { recursive: true, force: true });
    expect(out).toBe(`default-src 'self'\0${html}`);
    expect(luaLongString("a")).toBe("[[\na]]");
  });

  it("is in the build: dist/lua/gray/status_page.lua, with the compiled page script inline", () => {
    const out = execFileSync(
      "lua5.1",
      ["-e", `local m = dofile("${LUA_DIR}/gray/status_page.lua") io.write(#m.html, " ", m.csp)`],
      { encoding: "utf8" },
    );
    expect(Number(out.split(" ")[0])).toBeGreaterThan(10000);
    expect(out).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
  });
});

/** The file's temp dir: screenshots of failed checks (removed when empty). */
const shots = mkdtempSync(join(tmpdir(), "gray-status-page-"));
afterAll(() => {
  try {
    rmdirSync(shots);
  } catch {
    // Screenshots of failed checks are in it: kept.
  }
});

/** Runs a browser check; when it fails, saves a screenshot and prints its path before failing. */
async function checked<T>(page: Page, name: string, check: () => Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (err) {
    const file = join(shots, `${name.replace(/[^\w-]+/g, "_")}.png`);
    await page.screenshot({ path: file, fullPage: true }).catch(() => undefined);
    console.log(`status page check "${name}" failed: screenshot ${file}`);
    throw err;
  }
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, withinMs = 15000): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${withinMs} ms`);
    await sleep(200);
  }
}

/** The page's cells of a route's row, by field: the raw figure (data-value) where it has one, else the text. */
async function routeRow(page: Page, name: string): Promise<Record<string, string>> {
  const cells = await page
    .locator(`#routes tr[data-route="${name}"] td[data-field]`)
    .evaluateAll((tds) =>
      tds.map((td) => [td.getAttribute("data-field"), td.getAttribute("data-value") ?? td.textContent]),
    );
  return Object.fromEntries(cells) as Record<string, string>;
}

async function decisions(page: Page): Promise<Record<string, number>> {
  const rows = await page
    .locator("#rules tr[data-rule]")
    .evaluateAll((trs) =>
      trs.map((tr) => [
        tr.getAttribute("data-rule"),
        Number(tr.querySelector('[data-field="decisions"]')?.getAttribute("data-value")),
      ]),
    );
  return Object.fromEntries(rows) as Record<string, number>;
}

async function answers(page: Page): Promise<number> {
  return Number((await page.locator("body").getAttribute("data-answers")) ?? 0);
}

/** Waits until the page has taken `more` answers after now. */
async function nextAnswers(page: Page, more: number): Promise<void> {
  const from = await answers(page);
  await until(`${more} more answers on the page`, async () =>
    (await answers(page)) >= from + more ? true : undefined,
  );
}

async function chartState(page: Page, chart: string, name: string): Promise<{ d: string; points: number }> {
  const path = page.locator(`#${chart} path[data-route="${name}"]`);
  return { d: (await path.getAttribute("d")) ?? "", points: Number(await path.getAttribute("data-points")) };
}

const GROUP_FLAGGED = loopbackClients(6, 110);
const GROUP_WEIGHTED = loopbackClients(10, 111);
const WEIGHT = 30;

describe.each(PATTERNS)("%s pattern: the page in Chromium", (pattern) => {
  const ctx = useRouter({ pattern, workers: 2, options: { cache_ttl_ms: 200 } });
  let browser: Browser;
  let page: Page;
  let problems: PageProblems;

  beforeAll(async () => {
    browser = await launchBrowser();
    ({ page, problems } = await watchedPage(browser));
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("answers a browser with the page, everyone else with JSON, and Prometheus text as before", async () => {
    const url = ctx.router.statusUrl;
    const json = (await get(url)).headers["content-type"];
    expect(json).toBe("application/json");
    for (const accept of ["*/*", "application/json", "application/json, text/plain, */*"])
      expect((await get(url, { headers: { accept } })).headers["content-type"], accept).toBe("application/json");
    const explicit = await get(`${url}?format=json`, { headers: { accept: "text/html" } });
    expect(explicit.headers["content-type"]).toBe("application/json");
    const s = JSON.parse(explicit.body) as Status;
    expect(Object.keys(s)).toEqual([
      "routes",
      "latency_le",
      "route_names",
      "rules",
      "store",
      "store_errors",
      "cache_evictions",
      "weight",
      "ranges",
      "canaries",
      "stable_target",
      "document",
      "cache_dict",
      "memcached",
      "config",
      "release",
      "release_error",
    ]);
    const asks: { url: string; headers: Record<string, string> }[] = [
      { url, headers: { accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" } },
      { url: `${url}?format=html`, headers: {} },
    ];
    for (const ask of asks) {
      const html = await get(ask.url, { headers: ask.headers });
      expect(html.status).toBe(200);
      expect(html.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(html.headers["cache-control"]).toBe("no-store");
      const csp = String(html.headers["content-security-policy"]);
      expect(csp).toContain("default-src 'self'");
      // The CSP names the hash of exactly the script the page holds.
      const script = /<script type="module">([\s\S]*)<\/script>/.exec(html.body)![1]!;
      const style = /<style>([\s\S]*?)<\/style>/.exec(html.body)![1]!;
      expect(csp).toContain(`script-src 'sha256-${createHash("sha256").update(script).digest("base64")}'`);
      expect(csp).toContain(`style-src 'sha256-${createHash("sha256").update(style).digest("base64")}'`);
      expect(html.body).not.toContain("<!--");
      // Nothing loaded from anywhere: no src or href but the empty data: favicon.
      expect([...html.body.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1])).toEqual(["data:,"]);
    }
    // Prometheus text, whatever the Accept: the same answer with and without a browser's.
    const plain = await get(`${url}?format=prometheus`);
    const asBrowser = await get(`${url}?format=prometheus`, { headers: { accept: "text/html" } });
    expect(plain.headers["content-type"]).toBe("text/plain; version=0.0.4");
    expect(asBrowser.headers["content-type"]).toBe("text/plain; version=0.0.4");
    expect(asBrowser.body).toBe(plain.body);
    expect(plain.body).toMatch(/^# HELP gray_requests_total /);
  });

  it("shows per route what /gray/status says, and its charts move as traffic flows", async () => {
    const { address } = sharedMemcached();
    await flagIps(address, "", GROUP_FLAGGED);
    await setWeight(address, "", WEIGHT);
    await until("the router holding the weight and the flags", async () => {
      const s = await fetchStatus(ctx.router.statusUrl);
      return s.canaries.canary?.weight === WEIGHT && s.document.entries.ips === GROUP_FLAGGED.length ? s : undefined;
    });
    const loads = [
      Load.start({ url: `${ctx.router.url}/`, sources: GROUP_FLAGGED, durationMs: 40000, thinkMs: 25 }),
      Load.start({ url: `${ctx.router.url}/`, sources: GROUP_WEIGHTED, durationMs: 40000, thinkMs: 25 }),
      // The canary's 5xx: a flagged client asking for the backends' failing location.
      Load.start({ url: `${ctx.router.url}/fail`, sources: [GROUP_FLAGGED[0]!], durationMs: 40000, thinkMs: 100 }),
    ];
    try {
      const reply = await page.goto(ctx.router.statusUrl);
      expect(reply?.headers()["content-type"]).toBe("text/html; charset=utf-8");
      await checked(page, `${pattern}-under-load`, async () => {
        await until("7 answers on the page", async () => ((await answers(page)) >= 7 ? true : undefined));
        const before = {
          stable: await chartState(page, "chart-rps", "stable"),
          canary: await chartState(page, "chart-rps", "canary"),
        };
        // The router's own rates over 5 s, against the page's over its last 5 s.
        const s1 = await fetchStatus(ctx.router.statusUrl);
        const t1 = performance.now();
        await sleep(5000);
        const s2 = await fetchStatus(ctx.router.statusUrl);
        const seconds = (performance.now() - t1) / 1000;
        const shown = { stable: await routeRow(page, "stable"), canary: await routeRow(page, "canary") };
        for (const name of ["stable", "canary"] as const) {
          const rate = (s2.routes[name]!.requests - s1.routes[name]!.requests) / seconds;
          expect(rate, name).toBeGreaterThan(20);
          expect(
            Math.abs(Number(shown[name].rps) - rate),
            `${name}: page ${shown[name].rps}/s, router ${rate}/s`,
          ).toBeLessThan(0.35 * rate + 5);
          // Requests so far: the page's last answer is at most a couple of seconds behind.
          const requests = Number(shown[name].requests);
          expect(requests).toBeGreaterThan(s1.routes[name]!.requests);
          expect(requests).toBeLessThanOrEqual(s2.routes[name]!.requests + 3 * rate);
          const p99 = Number(shown[name].p99_ms);
          expect(p99, `${name} p99`).toBeGreaterThan(0);
          expect(p99, `${name} p99`).toBeLessThan(10000);
        }
        // The weight in force, and the 5xx only on the canary (the flagged client's /fail).
        expect(Number(shown.canary.weight)).toBe(s2.canaries.canary!.weight);
        expect(Number(shown.canary.weight)).toBe(WEIGHT);
        expect(Number(shown.canary.errors_per_s)).toBeGreaterThan(0);
        expect(Number(shown.canary.error_share)).toBeGreaterThan(0);
        expect(Number(shown.stable.errors_per_s)).toBe(0);
        const rules = await decisions(page);
        expect(rules.ip).toBeGreaterThan(0);
        expect(rules.weight! + rules.none!).toBeGreaterThan(0);
        // The charts moved: more points, another line.
        for (const name of ["stable", "canary"] as const) {
          const after = await chartState(page, "chart-rps", name);
          expect(after.points, name).toBeGreaterThan(before[name].points);
          expect(after.d, name).not.toBe(before[name].d);
        }
        expect(Number(await page.locator("#chart-errors").getAttribute("data-points"))).toBeGreaterThan(5);
        expect(await page.locator('#chart-p99 path[data-route="canary"]').getAttribute("data-points")).not.toBe("0");
      });
    } finally {
      for (const load of loads) await load.stop();
    }
    // Quiet now: once the workers' counts are in the dict, the page shows exactly the router's figures.
    await checked(page, `${pattern}-settled`, async () => {
      await sleep(1500);
      await until("the page showing the router's counts", async () => {
        await nextAnswers(page, 1);
        const s = await fetchStatus(ctx.router.statusUrl);
        const shown = { stable: await routeRow(page, "stable"), canary: await routeRow(page, "canary") };
        const rules = await decisions(page);
        const same =
          Number(shown.stable.requests) === s.routes.stable!.requests &&
          Number(shown.canary.requests) === s.routes.canary!.requests &&
          rules.ip === s.rules.ip &&
          rules.weight === s.rules.weight &&
          rules.none === s.rules.none;
        return same ? true : undefined;
      });
      const revision = (await fetchStatus(ctx.router.statusUrl)).document.revision;
      await expect(page.locator("#document").textContent()).resolves.toContain(String(revision));
    });
  }, 120000);

  it("shows the running release written into memcached, as text, and says when the key is unreadable", async () => {
    const store = ctx.flags;
    const now = Date.now();
    const release = releaseAtStep2({
      id: "0123456789ab",
      owner: 'ops@<img src="x">',
      host: "build-7",
      started_at: now - 60000,
      lease_until: now + 600000,
      routers: [ctx.router.statusUrl],
      samples: {
        canary: { requests: 120, errors: 0, error_rate: 0, p99_ms: 4.5 },
        stable: { requests: 300, errors: 1, error_rate: 1 / 300, p99_ms: 3.2 },
      },
      verdicts: [{ step: 1, weight: 10, verdict: "pass", reasons: [], at: now - 30000 }],
    });
    const headline = page.locator('#release [data-field="headline"]');
    await checked(page, `${pattern}-release`, async () => {
      await store.set("gray:release", JSON.stringify(release));
      await until("the release on the page", async () =>
        (await headline.textContent())?.includes("release of canary: step 2/3, running") ? true : undefined,
      );
      const text = (await page.locator("#release").textContent()) ?? "";
      expect(text).toContain("step 2/3, weight 50 %");
      expect(text).toContain("10 % → 50 % → 100 %");
      expect(text).toContain("pass at step 1");
      // Store content is text on the page, never markup.
      expect(text).toContain('ops@<img src="x"> (pid 4242)');
      expect(await page.locator("#release img").count()).toBe(0);
      const s = await fetchStatus(ctx.router.statusUrl);
      expect(s.release).toMatchObject({ canary: "canary", step: 2, weight: 50, owner: release.owner });
      expect(s.release_error).toBeNull();

      await store.set("gray:release", '{"canary": "canary", "step": ');
      await until("the unreadable release on the page", async () =>
        (await headline.textContent())?.includes("unreadable") ? true : undefined,
      );
      await store.set("gray:release", "x".repeat(MAX_RELEASE_BYTES + 1));
      await until("the oversized release on the page", async () =>
        (await headline.textContent())?.includes(`over the ${MAX_RELEASE_BYTES} shown`) ? true : undefined,
      );
      await store.delete("gray:release");
      await until("no release on the page", async () =>
        (await headline.textContent()) === "no release running" ? true : undefined,
      );
    });
  }, 60000);

  it("ran its own script and style only, and asked nothing but the router's status location", () => {
    expect(problems.errors).toEqual([]);
    const origin = new URL(ctx.router.url).origin;
    const asked = new Set(problems.requests.map((u) => u.replace(/\?.*/, "?…")));
    expect([...asked].sort()).toEqual([`${origin}/gray/status`, `${origin}/gray/status?…`].sort());
    for (const u of problems.requests.filter((r) => r.includes("?")))
      expect(u).toBe(`${ctx.router.statusUrl}?format=json`);
  });

  it("leaves error.log clean", () => expectCleanLog(ctx.router));
});
