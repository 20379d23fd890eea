/**
 * Fake memcached servers on 127.0.0.1 that misbehave:
 * - GarbageMemcached answers every command line with garbage: malformed VALUE lines, absurd
 *   lengths, truncated replies, binary noise, error lines, long lines, closed connections.
 *   Seeded, so a failure replays. It never answers a well-formed value equal to a canary value
 *   ("1"): whatever the router makes of it, the client is not flagged.
 * - HostileMemcached behaves one way on every connection: closes at once, closes after reading,
 *   says "ERROR Too many open connections" and closes (memcached at its -c limit), answers
 *   garbage and stays, or stalls.
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
  ERROR: () => Buffer.from("ERROR\r\n"),
  SERVER_ERROR: () => Buffer.from("SERVER_ERROR out of memory storing object\r\n"),
  CLIENT_ERROR: () => Buffer.from("CLIENT_ERROR bad command line format\r\n"),
  "extra ENDs": () => Buffer.from("END\r\nEND\r\nEND\r\n"),
  "empty line": () => Buffer.from("\r\n"),
  noise: (r) => Buffer.from(Array.from({ length: 1 + r.int(64) }, () => r.int(256))),
  "long line": (r) => Buffer.from(`${"x".repeat(1000 + r.int(70000))}\r\n`),
  "noise line": (r) => Buffer.from(Array.from({ length: 1 + r.int(32) }, () => r.int(256)).concat([13, 10])),
  close: () => "close",
} satisfies Record<string, Answer>;

export type GarbageKind = keyof typeof ANSWERS;
export const GARBAGE_KINDS = Object.keys(ANSWERS) as GarbageKind[];

/** A TCP server on 127.0.0.1 that keeps its connections, so stop() can end them all. */
abstract class FakeServer implements MemcachedAddress {
  readonly host = "127.0.0.1";
  protected readonly sockets = new Set<Socket>();

  protected constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  protected track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export class GarbageMemcached extends FakeServer {
  private lines = 0;

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
    this.track(socket);
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

  /** Command lines answered so far: shows the router did ask. */
  get commandsAnswered(): number {
    return this.lines;
  }
}

/** How a HostileMemcached treats every connection. */
export const HOSTILITIES = {
  /** Accepts, then closes before reading anything. */
  "close at once": (socket) => void socket.destroy(),
  /** Reads the first bytes of a command, then closes without a word. */
  "close after reading": (socket) => void socket.once("data", () => socket.destroy()),
  /** What memcached does at its connection limit (-c): says so on accept, then closes. */
  "too many connections": (socket) => void socket.end("ERROR Too many open connections\r\n"),
  /** Answers every chunk with a line no memcached sends (a Redis reply) and stays connected. */
  "garbage and stay": (socket) => void socket.on("data", () => socket.write("+OK\r\n")),
  /** Reads, never answers, never closes. */
  stall: (socket) => void socket.resume(),
} satisfies Record<string, (socket: Socket) => void>;

export type Hostility = keyof typeof HOSTILITIES;
export const HOSTILITY_KINDS = Object.keys(HOSTILITIES) as Hostility[];

export class HostileMemcached extends FakeServer {
  private accepted = 0;

  static async start(kind: Hostility): Promise<HostileMemcached> {
    const server = createServer();
    const port = await listenOnLoopback(server);
    const fake = new HostileMemcached(server, port);
    server.on("connection", (socket) => {
      fake.accepted++;
      fake.track(socket);
      HOSTILITIES[kind](socket);
    });
    return fake;
  }

  /** Connections accepted so far: shows the client did come. */
  get connections(): number {
    return this.accepted;
  }
}
