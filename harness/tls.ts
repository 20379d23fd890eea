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

function selfSignedCa(dir: string, name: string): void {
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.pem`,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
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
  openssl(dir, [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    "server.key",
    "-out",
    "server.csr",
    "-subj",
    `/CN=${SERVER_NAME}`,
  ]);
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
