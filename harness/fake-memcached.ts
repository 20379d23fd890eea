/**
 * A fake memcached on 127.0.0.1 that answers every command line with garbage: malformed
 * VALUE lines, absurd lengths, truncated replies, binary noise, error lines, long lines,
 * closed connections. Seeded, so a failure replays. It never answers a well-formed value
 * equal to a canary value ("1"): whatever the router makes of it, the client is not flagged.
 */
import { type Server, type Socket, createServer } from "node:net";
import { listenOnLoopback } from "./net.ts";
import { type Random, seededRandom } from "./random.ts";
import type { MemcachedAddress } from "./stack.ts";

type Answer = (r: Random, key: string) => Buffer | "close";

/** The kinds of garbage; by default each answer is one of them, picked at random. */
const ANSWERS = {
  /** lua-resty-memcached passes the length to receive(), which raises on a number this big. */
  "absurd length": (_, key) => Buffer.from(`VALUE ${key} 0 99999999999999999999\r\n`),
  "length past 2^64": (_, key) => Buffer.from(`VALUE ${key} 0 18446744073709551616\r\nxx\r\nEND\r\n`),
  "truncated value": (_, key) => Buffer.from(`VALUE ${key} 0 5\r\nab`),
  "bad flags": (_, key) => Buffer.from(`VALUE ${key} x 1\r\n1\r\nEND\r\n`),
  "not a flag value": (_, key) => Buffer.from(`VALUE ${key} 0 2\r\nno\r\nEND\r\n`),
  "value with a line end": (_, key) => Buffer.from(`VALUE ${key} 0 3\r\n1\r\n\r\nEND\r\n`),
  "bare VALUE": () => Buffer.from("VALUE\r\n"),
  "ERROR": () => Buffer.from("ERROR\r\n"),
  "SERVER_ERROR": () => Buffer.from("SERVER_ERROR out of memory storing object\r\n"),
  "CLIENT_ERROR": () => Buffer.from("CLIENT_ERROR bad command line format\r\n"),
  "extra ENDs": () => Buffer.from("END\r\nEND\r\nEND\r\n"),
  "empty line": () => Buffer.from("\r\n"),
  "noise": (r) => Buffer.from(Array.from({ length: 1 + r.int(64) }, () => r.int(256))),
  "long line": (r) => Buffer.from(`${"x".repeat(1000 + r.int(70000))}\r\n`),
  "noise line": (r) => Buffer.from(Array.from({ length: 1 + r.int(32) }, () => r.int(256)).concat([13, 10])),
  "close": () => "close",
} satisfies Record<string, Answer>;

export type GarbageKind = keyof typeof ANSWERS;
export const GARBAGE_KINDS = Object.keys(ANSWERS) as GarbageKind[];

export class GarbageMemcached implements MemcachedAddress {
  readonly host = "127.0.0.1";
  private lines = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Answers with the given kinds of garbage (all of them by default), picked by a generator seeded with seed. */
  static async start(seed: number, kinds: GarbageKind[] = GARBAGE_KINDS): Promise<GarbageMemcached> {
    const random = seededRandom(seed);
    const answers: Answer[] = kinds.map((kind) => ANSWERS[kind]);
    const server = createServer();
    const port = await listenOnLoopback(server);
    const fake = new GarbageMemcached(server, port);
    server.on("connection", (socket) => fake.serve(socket, random, answers));
    return fake;
  }

  private serve(socket: Socket, random: Random, answers: Answer[]): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let pending = "";
    socket.on("data", (chunk) => {
      pending += chunk.toString("latin1");
      for (let nl = pending.indexOf("\n"); nl >= 0 && !socket.destroyed; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        this.lines++;
        const key = line.split(" ")[1]?.trim() ?? "k";
        const answer = random.pick(answers)(random, key);
        if (answer === "close") socket.destroy();
        else socket.write(answer);
      }
    });
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  /** Command lines answered so far: shows the router did ask. */
  get commandsAnswered(): number {
    return this.lines;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
