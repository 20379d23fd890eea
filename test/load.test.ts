/** The load driver against small Node servers that misbehave on purpose: what it counts as sent, failed, non-2xx and reset. */
import { type Server, createServer } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { Load, loopbackClients } from "../harness/load.ts";
import { freePort } from "../harness/net.ts";

/** A server on 127.0.0.1 answering with handle(); counts the connections it accepted. */
async function serve(handle: (socket: Socket, served: number, answer: (status: number, body: string) => void) => void) {
  let connections = 0;
  const perSocket = new WeakMap<Socket, number>();
  const server: Server = createServer((req, res) => {
    const served = perSocket.get(req.socket) ?? 0;
    perSocket.set(req.socket, served + 1);
    handle(req.socket, served, (status, body) => res.writeHead(status, { "content-type": "text/plain" }).end(body));
  });
  server.keepAliveTimeout = 10_000;
  server.on("connection", () => connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, connections: () => connections };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

describe("load driver", () => {
  it("sends from each client's own source address over one keep-alive connection each, and stops by itself", async () => {
    const server = await serve((socket, _n, answer) => answer(200, `${socket.remoteAddress}\n`));
    const sources = loopbackClients(8, 102);
    const started = Date.now();
    const summary = await Load.start({ url: server.url, sources, durationMs: 600 }).done();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(Object.keys(summary.routes).sort()).toEqual([...sources].sort());
    expect(summary.sent).toBeGreaterThan(50);
    expect(summary).toMatchObject({ failed: 0, non2xx: 0, resets: 0 });
    expect(server.connections()).toBe(sources.length);
    expect(summary.p99Ms).toBeGreaterThan(0);
    expect(summary.maxMs).toBeGreaterThanOrEqual(summary.p99Ms);
  });

  it("stops at the request budget", async () => {
    const server = await serve((_s, _n, answer) => answer(200, "ok"));
    const load = Load.start({ url: server.url, clients: 4, durationMs: 10_000, maxRequests: 100 });
    const summary = await load.done();
    expect(summary.sent).toBeGreaterThanOrEqual(100);
    expect(summary.sent).toBeLessThan(104);
  });

  it("retries a reset of a reused idle connection once: counted as a reset, not a failure", async () => {
    // Every connection is cut when its second request arrives, as a server closing an idle connection might.
    const server = await serve((socket, served, answer) => (served === 1 ? socket.destroy() : answer(200, "ok")));
    const summary = await Load.start({ url: server.url, clients: 4, durationMs: 400 }).done();
    expect(summary.resets).toBeGreaterThan(0);
    expect(summary.failed).toBe(0);
    expect(summary.routes.ok).toBe(summary.sent);
  });

  it("fails a request reset on a fresh connection, and one whose retry is reset too", async () => {
    // Each client's first request is answered; from then on every request is cut.
    let answered = 0;
    const server = await serve((socket, served, answer) =>
      served === 0 && answered++ < 2 ? answer(200, "ok") : socket.destroy(),
    );
    const load = Load.start({ url: server.url, clients: 2, durationMs: 300 });
    const summary = await load.done();
    expect(summary.routes.ok).toBe(2);
    expect(summary.failed).toBe(summary.sent - 2);
    expect(summary.errors.reset).toBe(summary.failed);
    expect(summary.non2xx).toBe(0);
    // The second request of each client met a reused connection's reset, was retried, and the retry was cut too.
    expect(load.records.filter((r) => r.retried && r.error === "reset")).toHaveLength(2);
    expect(summary.resets).toBe(summary.failed + 2);
  });

  it("counts non-2xx answers and refused connections apart", async () => {
    const server = await serve((_s, n, answer) => answer(n % 2 ? 503 : 200, "x"));
    const answered = await Load.start({ url: server.url, clients: 2, durationMs: 300 }).done();
    expect(answered.non2xx).toBeGreaterThan(0);
    expect(answered.failed).toBe(answered.non2xx);
    expect(answered.routes.x).toBe(answered.sent - answered.non2xx);

    const refused = await Load.start({
      url: `http://127.0.0.1:${await freePort()}/`,
      clients: 2,
      durationMs: 200,
    }).done();
    expect(refused.errors.refused).toBe(refused.sent);
    expect(refused.non2xx).toBe(0);
  });

  it("summarizes a window of the run", async () => {
    const server = await serve((_s, _n, answer) => answer(200, "ok"));
    const load = Load.start({ url: server.url, clients: 2, durationMs: 5_000 });
    await new Promise((r) => setTimeout(r, 300));
    const mark = load.now();
    await new Promise((r) => setTimeout(r, 300));
    const all = await load.stop();
    const late = load.summary(mark);
    expect(late.sent).toBeGreaterThan(0);
    expect(late.sent).toBeLessThan(all.sent);
    expect(all.durationMs).toBeLessThan(1500);
  });
});
