/**
 * The CLI and the npm package as users get them: the build leaves the `gray` bin executable so
 * `npx gray` works in the checkout (the README's way), and the release script's npm tarball, installed
 * with `npm install -g` under a temporary prefix, runs `gray` from any directory with its
 * dependencies fetched from the npm registry.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../harness/paths.ts";
import { editDocument, readRules } from "../harness/rules.ts";
import { unflag } from "../node-src/rules/edit.ts";
import { sharedMemcached } from "./support.ts";

const run = promisify(execFile);
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  version: string;
  private?: boolean;
  license?: string;
  engines?: Record<string, string>;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

describe("the CLI in the checkout", () => {
  it("every bin the build writes is executable", () => {
    for (const [name, file] of Object.entries(pkg.bin)) {
      expect(statSync(join(ROOT, file)).mode & 0o111, `${name}: ${file}`).toBe(0o111);
    }
  });

  it("`npx gray --help` answers as the README says", async () => {
    // npm_config_yes=false: never install a "gray" from the registry; the checkout's own bin must answer.
    const { stdout } = await run("npx", ["gray", "--help"], {
      cwd: ROOT,
      env: { ...process.env, npm_config_yes: "false" },
      timeout: 30000,
    });
    expect(stdout).toContain("gray add <ip|cidr>");
  });
});

describe("package.json", () => {
  it("is publishable: not private, a version, a licence, engines", () => {
    expect(pkg.private).toBeUndefined();
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(pkg.license).toBe("MIT");
    expect(pkg.engines?.node).toBeDefined();
  });

  it("keeps the build and test tools out of the runtime dependencies", () => {
    for (const dev of [
      "typescript",
      "typescript-to-lua",
      "vitest",
      "testcontainers",
      "lua-types",
      "eslint",
      "prettier",
    ]) {
      expect(pkg.dependencies[dev], dev).toBeUndefined();
      expect(pkg.devDependencies[dev], dev).toBeDefined();
    }
  });

  it("lists every bare import of the shipped JavaScript as a dependency", () => {
    const files = execFileSync("find", ["dist/node/node-src", "dist/node/lua-src", "-name", "*.js"], {
      cwd: ROOT,
      encoding: "utf8",
    })
      .trim()
      .split("\n");
    const imported = new Set<string>();
    for (const f of files) {
      for (const m of readFileSync(join(ROOT, f), "utf8").matchAll(
        /^\s*(?:import|export)\b[^;]*?\bfrom\s*["']([^"'.\s][^"'\s]*)["']|\bimport\(\s*["']([^"'.\s][^"'\s]*)["']\s*\)/gm,
      )) {
        const spec = (m[1] ?? m[2])!;
        if (spec.startsWith("node:")) continue;
        imported.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
      }
    }
    expect([...imported].filter((p) => pkg.dependencies[p] === undefined)).toEqual([]);
  });
});

describe("the release (scripts/release.sh) installed from its npm tarball", () => {
  const work = mkdtempSync(join(tmpdir(), "gray-release-"));
  const out = join(work, "release");
  const prefix = join(work, "prefix");
  const elsewhere = mkdtempSync(join(tmpdir(), "gray-elsewhere-"));
  const tarball = join(out, `gray-router-${pkg.version}.tgz`);
  let installMs = 0;

  beforeAll(async () => {
    // The suite runs on a fresh build; the script's own `npm run build` is skipped so dist/ is not rebuilt under other files.
    await run("bash", [join(ROOT, "scripts", "release.sh"), out], {
      cwd: ROOT,
      env: { ...process.env, GRAY_RELEASE_SKIP_BUILD: "1" },
      timeout: 60000,
    });
    const started = Date.now();
    await run("npm", ["install", "-g", "--prefix", prefix, "--no-audit", "--no-fund", tarball], {
      cwd: elsewhere,
      timeout: 120000,
    });
    installMs = Date.now() - started;
    console.log(`npm install -g --prefix of the tarball: ${installMs} ms`);
  }, 180000);

  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
    rmSync(elsewhere, { recursive: true, force: true });
  });

  it("writes the tarball, the rock, the rockspec, dist.ini and their checksums into one folder", () => {
    const sums = readFileSync(join(out, "SHA256SUMS"), "utf8");
    for (const f of [
      `gray-router-${pkg.version}.tgz`,
      `gray-router-${pkg.version}-1.all.rock`,
      `gray-router-${pkg.version}-1.rockspec`,
      "dist.ini",
    ]) {
      expect(sums).toContain(f);
    }
    execFileSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: out, stdio: "pipe" });
  });

  it("the rock carries every built module", () => {
    const listing = execFileSync("unzip", ["-Z1", join(out, `gray-router-${pkg.version}-1.all.rock`)], {
      encoding: "utf8",
    });
    for (const f of readdirSync(join(ROOT, "dist", "lua", "gray")).filter((n) => n.endsWith(".lua")))
      expect(listing).toContain(`lua/gray/${f}`);
  });

  it("the tarball carries the Lua, the examples and the CLI, not the harness, tests, sources or maps", () => {
    const files = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" }).trim().split("\n");
    for (const f of [
      "package/dist/lua/gray/router.lua",
      "package/dist/nginx/gray.conf",
      "package/dist/node/node-src/cli/gray.js",
      "package/LICENSE",
      "package/README.md",
    ]) {
      expect(files).toContain(f);
    }
    expect(
      files.filter(
        (f) =>
          /^package\/(harness|test|bench|lua-src|node-src|docker)\//.test(f) ||
          f.endsWith(".map") ||
          f.includes("dist/node/harness"),
      ),
    ).toEqual([]);
  });

  it("`gray --help` runs from another directory", async () => {
    const { stdout } = await run(join(prefix, "bin", "gray"), ["--help"], { cwd: elsewhere, timeout: 30000 });
    expect(stdout).toContain("gray add <ip|cidr>");
  });

  it("`gray add` writes the rule the router reads", async () => {
    const memcached = sharedMemcached();
    const unflagged = () =>
      editDocument(memcached.address, "", "remove 127.0.0.9", (doc) => unflag(doc, "ip", "127.0.0.9")).then();
    if ((await readRules(memcached.address)) !== undefined) await unflagged();
    try {
      // --init: the shared store may hold no rules document yet.
      await run(join(prefix, "bin", "gray"), ["add", "127.0.0.9", "--init", "--memcached", memcached.address], {
        cwd: elsewhere,
        timeout: 30000,
      });
      expect((await readRules(memcached.address))?.ips["127.0.0.9"]).toBe("canary");
    } finally {
      await unflagged();
    }
  });
});
