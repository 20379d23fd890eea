/**
 * Throwaway certificates for memcached -Z in tests: a CA, a server certificate it signed (for
 * `localhost` and 127.0.0.1), and a second CA that signed nothing of ours (a router or CLI trusting
 * it must refuse the server). Made with the openssl command; files readable by memcached's user.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCertificates {
  dir: string;
  /** The CA that signed the server's certificate (PEM). */
  ca: string;
  /** A CA that did not. */
  otherCa: string;
  cert: string;
  key: string;
}

/** The DNS name the server certificate carries (with IP 127.0.0.1). */
export const SERVER_NAME = "localhost";

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

/** `openssl req` with a new P-256 key, unencrypted, in `<name>.key`, and the subject CN=`cn`. */
function request(dir: string, name: string, cn: string, args: string[]): void {
  openssl(dir, [
    "req",
    ...args,
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-subj",
    `/CN=${cn}`,
  ]);
}

function selfSignedCa(dir: string, name: string): void {
  request(dir, name, name, [
    "-x509",
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign",
  ]);
}

export function makeCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), "gray-tls-"));
  chmodSync(dir, 0o755);
  selfSignedCa(dir, "ca");
  selfSignedCa(dir, "other-ca");
  request(dir, "server", SERVER_NAME, ["-out", "server.csr"]);
  writeFileSync(join(dir, "server.ext"), `subjectAltName=DNS:${SERVER_NAME},IP:127.0.0.1\n`);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    "server.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "server.pem",
    "-days",
    "2",
    "-extfile",
    "server.ext",
  ]);
  // memcached drops to nobody before it reads them.
  for (const f of ["ca.pem", "other-ca.pem", "server.pem", "server.key"]) chmodSync(join(dir, f), 0o644);
  return {
    dir,
    ca: join(dir, "ca.pem"),
    otherCa: join(dir, "other-ca.pem"),
    cert: join(dir, "server.pem"),
    key: join(dir, "server.key"),
  };
}
