/**
 * A fake router's /gray/status on 127.0.0.1: each request gets the next answer of a script (a
 * status to send as JSON, or an HTTP status code to fail with), the last one again once the script
 * runs out. For readers of the counters (`gray status --watch`, `gray release`) facing what a real
 * router only does at awkward moments: counters that go back (a restart), a router that fails one reading.
 */
import { type Server, createServer } from "node:http";
import type { Status } from "../lua-src/gray/status.ts";
import { listenOnLoopback } from "./net.ts";

export type StatusAnswer = Status | number;

export class FakeStatusServer {
  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly counter: { served: number },
  ) {}

  static async start(script: StatusAnswer[]): Promise<FakeStatusServer> {
    if (script.length === 0) throw new Error("FakeStatusServer needs at least one answer");
    const counter = { served: 0 };
    const server = createServer((_req, res) => {
      const answer = script[Math.min(counter.served, script.length - 1)]!;
      counter.served++;
      if (typeof answer === "number") {
        res.writeHead(answer, { "content-type": "text/plain" }).end(`failing on purpose (${answer})\n`);
        return;
      }
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer) + "\n");
    });
    const port = await listenOnLoopback(server);
    return new FakeStatusServer(server, port, counter);
  }

  /** Requests answered so far. */
  get served(): number {
    return this.counter.served;
  }

  get statusUrl(): string {
    return `http://127.0.0.1:${this.port}/gray/status`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
