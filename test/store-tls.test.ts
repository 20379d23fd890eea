/**
 * A locked store over TLS (issue 21): memcached -Z (with -Y authentication too). The router speaks
 * TLS with memcached.tls, verifying the certificate against lua_ssl_trusted_certificate; the CLI
 * with --tls and --ca-file. A certificate from another CA is refused by both: the router keeps what
 * it has (nothing here: stable) and warns, the CLI exits 1 and writes nothing.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gray } from "../harness/gray-cli.ts";
import { closeAgents } from "../harness/http.ts";
import { MemcachedServer } from "../harness/memcached.ts";
import { logProblems } from "../harness/nginx.ts";
import { RouterStack } from "../harness/stack.ts";
import { SERVER_NAME, type TestCertificates, makeCertificates } from "../harness/tls.ts";
import { fetchStatus } from "../node-src/cli/status.ts";
import { routeOf, testRuntime } from "./support.ts";

const certs: TestCertificates = makeCertificates();
const AUTH = join(certs.dir, "auth");
writeFileSync(AUTH, "ops:tls-and-pass\n");
chmodSync(AUTH, 0o644);

describe("memcached over TLS (-Z), with authentication (-Y)", () => {
  let memcached: MemcachedServer;
  let router: RouterStack;
  let otherCa: RouterStack;
  let unverified: RouterStack;

  beforeAll(async () => {
    const runtime = await testRuntime();
    memcached = await MemcachedServer.start(runtime, { tls: { cert: certs.cert, key: certs.key }, authFile: AUTH });
    const start = (trusted: string | undefined, tls: Record<string, unknown>) =>
      RouterStack.start({
        runtime,
        memcached,
        paths: [certs.dir],
        options: { cache_ttl_ms: 200, memcached: { auth_file: AUTH, tls: true, ...tls } },
        httpExtra: () =>
          trusted === undefined ? [] : [`lua_ssl_trusted_certificate ${trusted};`, "lua_ssl_verify_depth 2;"],
      });
    router = await start(certs.ca, { server_name: SERVER_NAME });
    otherCa = await start(certs.otherCa, { server_name: SERVER_NAME });
    unverified = await start(undefined, { tls_verify: false });
  });
  afterAll(async () => {
    await closeAgents();
    await Promise.all([router?.stop(), otherCa?.stop(), unverified?.stop()]);
    await memcached?.stop();
  });

  const env = (extra: Record<string, string> = {}) => ({
    GRAY_MEMCACHED: memcached.address,
    GRAY_MEMCACHED_AUTH_FILE: AUTH,
    ...extra,
  });
  const TLS = { GRAY_MEMCACHED_TLS: "1", GRAY_MEMCACHED_CA_FILE: certs.ca, GRAY_MEMCACHED_SERVER_NAME: SERVER_NAME };

  it("end to end: the CLI writes over TLS, routers read over TLS and route by it (rules document and seed keys)", async () => {
    const added = await gray(["add", "127.0.14.1", "--init"], env(TLS));
    expect(added.stderr).toBe("");
    expect(added.code).toBe(0);
    // Flags take the same options: --tls --ca-file (the certificate also carries IP 127.0.0.1).
    const seed = await gray(["add", "127.0.14.2", "--tls", "--ca-file", certs.ca], env());
    expect(seed.code, seed.stderr).toBe(0);
    await sleep(700);
    for (const r of [router, unverified]) {
      expect(await routeOf(r.url, { from: "127.0.14.1" })).toBe("canary");
      expect(await routeOf(r.url, { from: "127.0.14.2" })).toBe("canary");
      expect(await routeOf(r.url, { from: "127.0.14.3" })).toBe("stable");
      expect((await fetchStatus(r.statusUrl)).document.last_error).toBeNull();
    }
    expect(logProblems(router.errorLog())).toEqual([]);
  });

  it("a router trusting another CA refuses the certificate: stable for everyone, a warning naming the handshake", async () => {
    expect(await routeOf(otherCa.url, { from: "127.0.14.1" })).toBe("stable");
    await sleep(500);
    const status = await fetchStatus(otherCa.statusUrl);
    expect(status.document.revision).toBeNull();
    expect(status.document.last_error, status.document.last_error ?? "").toMatch(
      /TLS handshake with localhost failed: .*verify/,
    );
    expect(status.document.last_error).toContain(
      "lua_ssl_trusted_certificate must name the CA that signed memcached's certificate, and the certificate must carry memcached.server_name)",
    );
    // Warned (rate-limited: the first failure's words, e.g. a connect timeout, may be the ones logged).
    expect(otherCa.errorLog()).toMatch(/\[warn\].*gray\.router: memcached/);
    // No handshake slipped through unverified (a login then meets memcached closing the connection).
    expect(otherCa.errorLog()).not.toContain("authentication failed");
    // nginx logs the failed verification itself at error level; nothing else.
    expect(logProblems(otherCa.errorLog()).filter((l) => !/SSL certificate verify error|ssl/i.test(l))).toEqual([]);
  });

  it("the CLI: another CA, or no TLS at all, exits 1 and writes nothing", async () => {
    const other = await gray(["add", "127.0.14.9"], env({ ...TLS, GRAY_MEMCACHED_CA_FILE: certs.otherCa }));
    expect(other.code, other.stderr).toBe(1);
    expect(other.stderr).toMatch(/TLS handshake failed/);
    const plain = await gray(["add", "127.0.14.9"], env());
    expect(plain.code, plain.stderr).toBe(1);
    const listed = await gray(["list", "--json"], env(TLS));
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain("127.0.14.1");
    expect(listed.stdout).not.toContain("127.0.14.9");
  });

  it("bad TLS flags are bad input: exit 2, nothing sent", async () => {
    const noTls = await gray(["add", "127.0.14.9", "--ca-file", certs.ca], env());
    expect(noTls.code, noTls.stderr).toBe(2);
    expect(noTls.stderr).toContain("--ca-file needs --tls");
    const notPem = await gray(["add", "127.0.14.9", "--tls", "--ca-file", AUTH], env());
    expect(notPem.code).toBe(2);
    expect(notPem.stderr).toContain("not PEM certificates");
  });
});
