/**
 * The pages users copy from: every ```nginx block in README.md and docs/*.md that requires
 * gray.router is run as written — placeholder paths and ports swapped for the harness's — and
 * must route a flagged client to canary and another to stable with a clean error.log, once per
 * pattern it shows. So the snippet on the page and the one the tests run cannot drift apart.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FlagStore } from "../harness/flags.ts";
import { flagIps } from "../harness/rules.ts";
import { closeAgents, get } from "../harness/http.ts";
import { freePort } from "../harness/net.ts";
import { NginxServer, logProblems } from "../harness/nginx.ts";
import { LUA_DIR, LUA_SHIM_DIR, ROOT } from "../harness/paths.ts";
import { backend } from "../harness/stack.ts";
import { DEBIAN_MODULES, renderMain } from "../node-src/nginx-conf.ts";
import { routeOf, sharedMemcached, testRuntime } from "./support.ts";

const README_MAX_LINES = 300;
const PAGES = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const read = (page: string) => readFileSync(join(ROOT, page), "utf8");

interface Snippet {
  page: string;
  index: number;
  text: string;
}

function snippets(): Snippet[] {
  return PAGES.flatMap((page) =>
    [...read(page).matchAll(/^```nginx\n([\s\S]*?)^```$/gm)]
      .map((m, index) => ({ page, index, text: m[1]! }))
      .filter((s) => s.text.includes("gray.router")),
  );
}

/** The lines from `start` to the line closing the brace it opens. */
function block(lines: string[], start: number): [number, number] {
  let depth = 0;
  for (let i = start; i < lines.length; i++) {
    const code = lines[i]!.replace(/#.*$/, "");
    depth += (code.match(/\{/g) ?? []).length - (code.match(/\}/g) ?? []).length;
    if (depth === 0) return [start, i];
  }
  throw new Error(`unbalanced braces from line ${start + 1}: ${lines[start]}`);
}

/** The snippet's variants: as written, and, when it shows the exec pattern commented out, with those lines in place of the variable location. */
function variants(text: string): { name: string; text: string }[] {
  const lines = text.split("\n");
  const alternative = lines.filter((l) => /^\s*#\s*location\b/.test(l));
  if (alternative.length === 0) return [{ name: "as written", text }];
  const at = lines.findIndex((l) => /^\s*location\s+\/\s*\{/.test(l));
  expect(at, "the location the commented-out pattern replaces").toBeGreaterThanOrEqual(0);
  const [from, to] = block(lines, at);
  const swapped = [
    ...lines.slice(0, from),
    ...alternative.map((l) => l.replace(/^(\s*)#\s*/, "$1")),
    ...lines.slice(to + 1),
  ];
  return [
    { name: "as written", text },
    { name: "commented-out pattern", text: swapped.join("\n") },
  ];
}

/** Replaces `from` with `to` and fails the test if the page no longer has it (the substitutions must keep up with the page). */
function swap(text: string, from: RegExp, to: string): string {
  expect(text, `placeholder ${from}`).toMatch(from);
  return text.replace(new RegExp(from.source, from.flags.includes("g") ? from.flags : from.flags + "g"), to);
}

interface Ports {
  router: number;
  stable: number;
  canary: number;
}

/** A complete nginx.conf: the snippet's http block with the harness's paths and ports, plus the two backends. */
function runnable(text: string, debian: boolean, ports: Ports, memcachedPort: number): string {
  let t = text;
  const luaPaths = [LUA_DIR, ...(debian ? [LUA_SHIM_DIR] : [])].map((p) => `${p}/?.lua;`).join("");
  t = swap(t, /"\/path\/to\/gray-router\/dist\/lua\/\?\.lua;;"/, `"${luaPaths};"`);
  t = swap(t, /^(\s*)listen 80;/m, `$1listen 127.0.0.1:${ports.router};`);
  t = swap(t, /server 127\.0\.0\.1:8081;/, `server 127.0.0.1:${ports.stable};`);
  t = swap(t, /server 127\.0\.0\.1:8082;/, `server 127.0.0.1:${ports.canary};`);
  t = swap(t, /port = 11211/, `port = ${memcachedPort}`);
  const lines = t.split("\n");
  const at = lines.findIndex((l) => /^\s*http\s*\{/.test(l));
  // An http-context drop-in (no http { } of its own) goes inside renderMain's http block as it is.
  const body = at < 0 ? lines : lines.slice(at + 1, block(lines, at)[1]);
  return renderMain({
    flavour: debian ? "debian" : "openresty",
    http: [...body, "", ...backend("stable", ports.stable), ...backend("canary", ports.canary)],
  });
}

describe("README.md", () => {
  const readme = read("README.md");

  it(`is a front page: at most ${README_MAX_LINES} lines`, () => {
    expect(readme.split("\n").length - (readme.endsWith("\n") ? 1 : 0)).toBeLessThanOrEqual(README_MAX_LINES);
  });

  it("links every page under docs/, and names the test command and the fresh-machine setup", () => {
    for (const page of PAGES.filter((p) => p.startsWith("docs/"))) expect(readme, page).toContain(`](${page}`);
    expect(readme).toContain("npm test");
    expect(readme).toContain("bash harness/setup.sh");
  });

  it("shows the drop-in snippet, keep-alive to the upstreams included", () => {
    const own = snippets().filter((s) => s.page === "README.md");
    expect(own.length).toBeGreaterThan(0);
    for (const s of own) {
      expect(s.text).toContain("keepalive");
      expect(s.text).toContain("proxy_http_version 1.1;");
      expect(s.text).toContain('proxy_set_header Connection "";');
    }
  });

  it("names the modules Debian's nginx loads as the harness loads them", () => {
    for (const s of snippets()) {
      for (const m of s.text.matchAll(/load_module (\S+);/g))
        expect(DEBIAN_MODULES, `${s.page}: ${m[0]}`).toContain(m[1]);
    }
  });
});

/** GitHub's heading anchors: lower case, punctuation but hyphens and spaces dropped, spaces to hyphens. */
function anchors(markdown: string): Set<string> {
  const text = markdown.replace(/^```[\s\S]*?^```$/gm, "");
  return new Set(
    [...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
      m[1]!
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, "")
        .replace(/ /g, "-"),
    ),
  );
}

describe("links between the pages", () => {
  for (const page of PAGES) {
    it(`${page}: every relative link names a file and a heading that exist`, () => {
      const text = read(page).replace(/^```[\s\S]*?^```$/gm, "");
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [file, anchor] = target!.split("#") as [string, string | undefined];
        const path = file === "" ? page : join(page, "..", file);
        expect(existsSync(join(ROOT, path)), `${page} → ${target}`).toBe(true);
        if (anchor !== undefined) expect([...anchors(read(path))], `${page} → ${target}`).toContain(anchor);
      }
    });
  }
});

describe("nginx snippets on the pages route as they say", () => {
  const flags = { store: undefined as FlagStore | undefined };
  beforeAll(() => {
    flags.store = new FlagStore(sharedMemcached().address);
  });
  afterAll(async () => {
    flags.store?.close();
    await closeAgents();
  });

  for (const s of snippets()) {
    for (const v of variants(s.text)) {
      it(`${s.page} nginx block ${s.index + 1} (${v.name})`, async () => {
        const runtime = await testRuntime();
        const memcached = sharedMemcached();
        const ports = { router: await freePort(), stable: await freePort(), canary: await freePort() };
        const nginx = NginxServer.prepare(
          runnable(v.text, runtime.flavour === "debian", ports, memcached.port),
          ports.router,
        );
        try {
          await flags.store!.flush();
          // In the document: snippets read it whatever their ip_keys says. Written before nginx
          // starts, so the first request finds it loaded whether a worker loads as it starts
          // (init_worker) or on that request.
          await flagIps(memcached.address, "", ["127.0.0.2"]);
          await nginx.start(runtime, [LUA_DIR, LUA_SHIM_DIR]);
          for (const run of ["cold", "warm"]) {
            expect(await routeOf(nginx.url, { from: "127.0.0.2" }), `flagged client (${run})`).toBe("canary");
            expect(await routeOf(nginx.url, { from: "127.0.0.3" }), `other client (${run})`).toBe("stable");
          }
          const status = await get(`${nginx.url}/gray/status`, { from: "127.0.0.1" });
          expect(status.status).toBe(200);
          expect(JSON.parse(status.body)).toHaveProperty("routes");
          expect(logProblems(nginx.errorLog())).toEqual([]);
        } finally {
          await nginx.stop();
        }
      });
    }
  }
});
