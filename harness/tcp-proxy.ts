/**
 * A TCP proxy on 127.0.0.1 in front of a store (memcached). It forwards both ways and, on
 * demand, delays the store's replies, black-holes everything, or records the command lines
 * clients send: chaos tests make the store slow or silent without touching its process, and
 * the fuzzer sees every key the router asks for from the store's side of the wire. It can also
 * swap the store behind it (a garbage-answering fake for a while, then the real one again).
 */
import { type Server, type Socket, createConnection, createServer } from "node:net";
import { listenOnLoopback } from "./net.ts";
import type { MemcachedAddress } from "./stack.ts";

export type ProxyMode = { kind: "forward" } | { kind: "delay"; ms: number } | { kind: "blackhole" };

export interface TcpProxyOptions {
  /** Keep the command lines clients send (each with its line end), up to maxLines. */
  record?: boolean;
  maxLines?: number;
}

/** One client connection and its connection to the target. */
class Pipe {
  private pendingLine = "";
  /** Replies held back by a delay, released in order. */
  private readonly held: { at: number; chunk: Buffer }[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly proxy: TcpProxy,
    readonly client: Socket,
    readonly upstream: Socket,
  ) {
    client.on("data", (chunk) => this.fromClient(chunk));
    upstream.on("data", (chunk) => this.fromUpstream(chunk));
  }

  private fromClient(chunk: Buffer): void {
    this.proxy.noteClientBytes(this, chunk);
    if (this.proxy.currentMode.kind !== "blackhole" && !this.upstream.destroyed) this.upstream.write(chunk);
  }

  /** Splits the client's bytes into lines; a line still open at the end waits for the next chunk. */
  splitLines(chunk: Buffer, keep: (line: string) => void): void {
    const text = this.pendingLine + chunk.toString("latin1");
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      keep(text.slice(start, nl + 1));
      start = nl + 1;
    }
    this.pendingLine = text.slice(start);
  }

  private fromUpstream(chunk: Buffer): void {
    const mode = this.proxy.currentMode;
    if (mode.kind === "blackhole") return;
    if (mode.kind === "forward" && this.held.length === 0) {
      this.client.write(chunk);
      return;
    }
    const last = this.held[this.held.length - 1]?.at ?? 0;
    this.held.push({ at: Math.max(Date.now() + (mode.kind === "delay" ? mode.ms : 0), last), chunk });
    this.pump();
  }

  private pump(): void {
    if (this.timer !== undefined) return;
    const first = this.held[0];
    if (first === undefined) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        while (this.held[0] !== undefined && this.held[0].at <= Date.now()) {
          if (!this.client.destroyed) this.client.write(this.held.shift()!.chunk);
          else this.held.shift();
        }
        this.pump();
      },
      Math.max(0, first.at - Date.now()),
    );
  }

  /**
   * Closes the client's side with a FIN, as a store process that exits does; destroying it with
   * unread bytes would send a reset, which nginx logs at error level for any cosocket.
   */
  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.upstream.destroy();
    this.client.end();
    this.client.once("end", () => this.client.destroy());
    setTimeout(() => this.client.destroy(), 1000).unref();
  }
}

export class TcpProxy implements MemcachedAddress {
  readonly host = "127.0.0.1";
  private mode: ProxyMode = { kind: "forward" };
  private readonly recording: boolean;
  private readonly maxLines: number;
  private lines: string[] = [];
  private dropped = 0;
  private readonly pipes = new Set<Pipe>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private target: MemcachedAddress,
    options: TcpProxyOptions,
  ) {
    this.recording = options.record ?? false;
    this.maxLines = options.maxLines ?? 1_000_000;
  }

  /** Listens on a free port of 127.0.0.1 and forwards to target. */
  static async start(target: MemcachedAddress, options: TcpProxyOptions = {}): Promise<TcpProxy> {
    const server = createServer();
    const port = await listenOnLoopback(server);
    const proxy = new TcpProxy(server, port, target, options);
    server.on("connection", (client) => proxy.accept(client));
    return proxy;
  }

  private accept(client: Socket): void {
    const upstream = createConnection({ host: this.target.host, port: this.target.port });
    const pipe = new Pipe(this, client, upstream);
    this.pipes.add(pipe);
    // Either side closing or failing closes both: the client sees what a dying store looks like.
    const close = () => {
      if (this.pipes.delete(pipe)) pipe.close();
    };
    for (const socket of [client, upstream]) {
      socket.on("error", close);
      socket.on("close", close);
    }
  }

  get address(): string {
    return `${this.host}:${this.port}`;
  }

  get currentMode(): ProxyMode {
    return this.mode;
  }

  /** Forward, delay replies by ms, or swallow everything (connections stay open, nothing answers). */
  setMode(mode: ProxyMode): void {
    this.mode = mode;
  }

  /**
   * New connections go to target from now on; open ones are closed, as when a store is replaced,
   * so no pooled connection keeps talking to the old one.
   */
  retarget(target: MemcachedAddress): void {
    this.target = target;
    for (const pipe of this.pipes) pipe.close();
    this.pipes.clear();
  }

  /** Client connections open now. */
  get connections(): number {
    return this.pipes.size;
  }

  noteClientBytes(pipe: Pipe, chunk: Buffer): void {
    if (!this.recording) return;
    pipe.splitLines(chunk, (line) => {
      if (this.lines.length < this.maxLines) this.lines.push(line);
      else this.dropped++;
    });
  }

  /** The command lines recorded since the last call (each with its line end, as latin1), and how many did not fit. */
  takeCommands(): { lines: string[]; dropped: number } {
    const taken = { lines: this.lines, dropped: this.dropped };
    this.lines = [];
    this.dropped = 0;
    return taken;
  }

  async stop(): Promise<void> {
    for (const pipe of this.pipes) pipe.close();
    this.pipes.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
