/**
 * What a locked store costs the request path (issue 21): the router against an open memcached,
 * one with authentication (-Y, auth_file), and one with TLS and authentication (-Z -Y, tls +
 * auth_file), each with a new client every request (a seed-key lookup per request: the `miss`
 * variant) and with one cached client. The login and the handshake happen once per pooled
 * connection, so a lookup on an authenticated store costs what one on an open store does; TLS adds
 * the encryption of each lookup's few bytes. Interleaved rounds, worker CPU per request.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { MemcachedServer } from "../harness/memcached.ts";
import { SERVER_NAME, makeCertificates } from "../harness/tls.ts";
import type { LuaValue } from "../node-src/lua-literal.ts";
import { fmt } from "./compare.ts";
import { type Bed, type BenchTarget, type RoundPlan, interleave, median, startVariant, table } from "./measure.ts";
import { cyclingClients, router } from "./variants.ts";

export interface LockedRow {
  store: string;
  clients: string;
  rps: number;
  cpuUs: number;
}

export async function lockedStoreCost(bed: Bed, load: RoundPlan): Promise<{ rows: LockedRow[]; table: string }> {
  const certs = makeCertificates();
  const authFile = join(certs.dir, "auth");
  writeFileSync(authFile, "bench:locked-store-pass\n");
  chmodSync(authFile, 0o644);
  const auth = await MemcachedServer.start(bed.runtime, { authFile });
  const tls = await MemcachedServer.start(bed.runtime, { authFile, tls: { cert: certs.cert, key: certs.key } });
  const stores: { name: string; memcached: Record<string, LuaValue> }[] = [
    { name: "open", memcached: { host: "127.0.0.1", port: bed.ports.memcached } },
    { name: "-Y (auth_file)", memcached: { host: "127.0.0.1", port: auth.port, auth_file: authFile } },
    {
      name: "-Z -Y (tls, auth_file)",
      memcached: { host: "127.0.0.1", port: tls.port, auth_file: authFile, tls: true, server_name: SERVER_NAME },
    },
  ];
  const targets: (BenchTarget & { store: string; clients: string })[] = [];
  try {
    for (const store of stores) {
      for (const [clients, script] of [
        ["a new one each request", cyclingClients()],
        ["one, cached", undefined],
      ] as const) {
        const site = router({ trusted_proxies: ["127.0.0.1"], memcached: store.memcached });
        const nginx = await startVariant(
          bed,
          (luaPaths, ports) => [`lua_ssl_trusted_certificate ${certs.ca};`, ...site(luaPaths, ports)],
          1,
          [certs.dir],
        );
        targets.push({ name: `${store.name} ${clients}`, nginx, script, store: store.name, clients });
      }
    }
    // Warm-up: pools (logins, handshakes), caches, traces; error.log is judged from here on.
    await interleave(targets, { ...load, rounds: 1, seconds: 1 });
    const logFrom = targets.map((t) => t.nginx.errorLog().length);
    const samples = await interleave(targets, load);
    const rows = targets.map((t) => {
      const s = samples.get(t.name)!;
      return {
        store: t.store,
        clients: t.clients,
        rps: median(s.map((x) => x.rps)),
        cpuUs: median(s.map((x) => x.cpuUs)),
      };
    });
    const errors = targets.map((t, i) => t.nginx.errorLog().slice(logFrom[i])).join("\n");
    if (/\[(warn|error|crit)\].*gray\.router/.test(errors))
      throw new Error(`a locked-store router warned:\n${errors.slice(0, 2000)}`);
    return {
      rows,
      table: table(
        ["store", "clients", "req/s", "worker CPU µs/req"],
        rows.map((r) => [r.store, r.clients, fmt(r.rps, 0), fmt(r.cpuUs, 1)]),
      ),
    };
  } finally {
    await Promise.all(targets.map((t) => t.nginx.stop()));
    await Promise.all([auth.stop(), tls.stop()]);
  }
}
