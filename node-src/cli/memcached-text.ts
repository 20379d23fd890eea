/**
 * A small client of memcached's classic text protocol, only the commands twemproxy (nutcracker
 * 0.5.0) forwards — get/gets, set/add/cas, delete, touch, version — plus `lru_crawler metadump`
 * for memcached itself. One request at a time on one connection; every reply is checked byte by
 * byte as it arrives, so a peer that answers something no memcached would is a protocol error at
 * once, not after a timeout, and a reply is only what it says: a closed connection, a timeout or an
 * error line is never read as "stored" or "absent".
 *
 * Why our own and not a library: the two maintained text-protocol clients for Node were compared
 * on what the CLI and the next issues need. `memcache` (1.10, TypeScript, 2026) requires Node
 * ≥ 22.19 (we run 20), skips reply lines it does not know while it waits for a value's END (a
 * garbage-answering peer is only noticed at the timeout), reads values as UTF-8, answers `false`
 * alike for NOT_FOUND and a failed delete, and authenticates only by binary SASL, not memcached's
 * text `-Y` credentials. `memcache-client` (1.0.5) logs unknown reply lines to stdout with
 * console.log and keeps waiting for the command's timeout, and has no hook on a new connection.
 * What we need is small: strict replies, a timeout per request, IPv6, TLS and a hook run on each
 * new connection before any request (for the `set <any> 0 0 <len>\r\n<user> <password>\r\n`
 * credentials a later issue sends), so it is here, in about 300 lines.
 */
import { type Socket, createConnection } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";

/** Why a request failed, in words for an operator: what the peer did or answered. */
export class TextProtocolError extends Error {
  constructor(
    readonly reason: string,
    /** An error line the server sent (ERROR, CLIENT_ERROR ..., SERVER_ERROR ...): it understood and refused. */
    readonly rejection?: string,
  ) {
    super(reason);
  }
}

export interface TextClientOptions {
  host: string;
  port: number;
  /** Connect, and each request from sending to the reply's last byte. */
  timeoutMs: number;
  /** Speak TLS (memcached's -Z). */
  tls?: ConnectionOptions;
  /** Runs on each new connection before any other request (e.g. memcached's -Y credentials). */
  onConnect?: (connection: TextConnection) => Promise<void>;
}

export interface ValueReply {
  key: string;
  flags: number;
  value: Buffer;
  /** With gets: the compare-and-swap token. */
  cas: string | undefined;
}

export interface DumpEntry {
  /** As metadump prints it: URL-encoded. */
  key: string;
  /** Unix time, or -1 for never. */
  exp: number;
}

export type StatusWord = "STORED" | "NOT_STORED" | "EXISTS" | "NOT_FOUND" | "DELETED" | "TOUCHED";

/** What a request expects back. */
type Expect =
  | { kind: "status"; words: readonly StatusWord[] }
  | { kind: "values"; keys: readonly string[]; withCas: boolean }
  | { kind: "version" }
  | { kind: "dump" };

/** A status word, the values of a get, what `version` answered, or a metadump. */
type Reply = StatusWord | ValueReply[] | { version: string } | DumpEntry[];

const CRLF = "\r\n";
const ERROR_WORDS = ["ERROR", "CLIENT_ERROR", "SERVER_ERROR"] as const;
/** The longest reply line we accept: error lines are short, VALUE lines under 300 bytes. */
const MAX_LINE = 2048;
/** The largest value we read (memcached's default item limit is 1 MiB; -I raises it). */
const MAX_VALUE_BYTES = 128 * 1024 * 1024;

/** What the peer sent, for a message: printable, quoted, cut short. */
export function quoted(bytes: Buffer): string {
  const text = bytes.toString("latin1").replace(/\r\n$/, "");
  const cut = text.length > 80 ? text.slice(0, 80) + "..." : text;
  return JSON.stringify(cut);
}

/** A line may still become one of `lines` (exact) or an error line: false once it cannot. */
function couldStart(partial: string, exact: readonly string[], prefixes: readonly string[]): boolean {
  if (partial.length > MAX_LINE) return false;
  for (const w of exact) if (w.startsWith(partial)) return true;
  for (const p of prefixes) if (p.startsWith(partial) || partial.startsWith(p)) return true;
  for (const e of ERROR_WORDS) {
    if (e.startsWith(partial)) return true;
    if (partial.startsWith(e + " ")) return true;
  }
  return false;
}

/** ERROR, ERROR <text>, CLIENT_ERROR <text>, SERVER_ERROR <text>. */
function isErrorLine(line: string): boolean {
  return ERROR_WORDS.some((e) => line === e || line.startsWith(e + " "));
}

type Parsed = { done: true; reply: Reply; used: number } | { done: false };

/** How far a reply has been read: whole lines (and values) before `at` are in `entries` / `dump`. */
interface ParseState {
  at: number;
  entries: ValueReply[];
  dump: DumpEntry[];
}

/**
 * Parses a reply from the front of `buf`, going on from `state` (a long metadump comes in many
 * chunks and is read once); throws a TextProtocolError as soon as it cannot be a reply.
 */
function parseReply(buf: Buffer, expect: Expect, state: ParseState): Parsed {
  const { entries, dump } = state;
  for (;;) {
    const at = state.at;
    const crlf = buf.indexOf(CRLF, at, "latin1");
    // metadump ends its entry lines with a bare \n; everything else with \r\n.
    const lf = expect.kind === "dump" ? buf.indexOf("\n", at, "latin1") : -1;
    const end = lf >= 0 && (crlf < 0 || lf < crlf) ? lf : crlf;
    const exact = expect.kind === "status" ? expect.words : expect.kind === "version" ? [] : ["END"];
    const prefixes =
      expect.kind === "values"
        ? ["VALUE "]
        : expect.kind === "version"
          ? ["VERSION "]
          : expect.kind === "dump"
            ? ["key=", "BUSY "]
            : [];
    if (end < 0) {
      const partial = buf.subarray(at).toString("latin1");
      if (!couldStart(partial, exact, prefixes)) throw notAReply(buf.subarray(at));
      return { done: false };
    }
    const line = buf.subarray(at, end).toString("latin1");
    const next = end + (end === crlf ? 2 : 1);
    if (end !== crlf && !line.startsWith("key=")) throw notAReply(buf.subarray(at, next));
    if (isErrorLine(line) || (expect.kind === "dump" && line.startsWith("BUSY "))) {
      throw new TextProtocolError(`answered ${quoted(buf.subarray(at, next))}`, line);
    }
    switch (expect.kind) {
      case "status":
        if (!(expect.words as readonly string[]).includes(line)) throw notAReply(buf.subarray(at, next));
        return { done: true, reply: line as StatusWord, used: next };
      case "version":
        if (!/^VERSION \S+$/.test(line)) throw notAReply(buf.subarray(at, next));
        return { done: true, reply: { version: line.slice("VERSION ".length) }, used: next };
      case "dump": {
        if (line === "END") return { done: true, reply: dump, used: next };
        const m = /^key=(\S+) exp=(-?\d+)( |$)/.exec(line);
        if (!m) throw notAReply(buf.subarray(at, next));
        dump.push({ key: m[1]!, exp: Number(m[2]) });
        state.at = next;
        continue;
      }
      case "values": {
        if (line === "END") return { done: true, reply: entries, used: next };
        const m = expect.withCas
          ? /^VALUE (\S+) (\d{1,10}) (\d{1,10}) (\d{1,20})$/.exec(line)
          : /^VALUE (\S+) (\d{1,10}) (\d{1,10})$/.exec(line);
        const bytes = m ? Number(m[3]) : NaN;
        if (!m || !expect.keys.includes(m[1]!) || Number(m[2]) > 0xffffffff || bytes > MAX_VALUE_BYTES)
          throw notAReply(buf.subarray(at, next));
        if (buf.length < next + bytes + 2) {
          // The value is still coming; what has come of its line end must be \r\n.
          const tail = buf.subarray(next + bytes);
          if (tail.length > 0 && !CRLF.startsWith(tail.toString("latin1"))) throw notAReply(buf.subarray(at));
          return { done: false };
        }
        if (buf.toString("latin1", next + bytes, next + bytes + 2) !== CRLF)
          throw notAReply(buf.subarray(at, next + bytes + 2));
        entries.push({
          key: m[1]!,
          flags: Number(m[2]),
          value: Buffer.from(buf.subarray(next, next + bytes)),
          cas: m[4],
        });
        state.at = next + bytes + 2;
        continue;
      }
    }
  }
}

function notAReply(bytes: Buffer): TextProtocolError {
  return new TextProtocolError(`answered ${quoted(bytes)}, which is not a memcached reply (protocol error)`);
}

interface Pending {
  expect: Expect;
  state: ParseState;
  resolve: (reply: Reply) => void;
  reject: (err: TextProtocolError) => void;
}

/** One connection; requests are sent one after another, never pipelined. */
export class TextConnection {
  private socket: Socket | undefined;
  /** The socket is connected; then the on-connect hook has run (its own requests wait only for the socket). */
  private connecting: Promise<void> | undefined;
  private ready: Promise<void> | undefined;
  private inHook = false;
  private buffer: Buffer = Buffer.alloc(0);
  private pending: Pending | undefined;
  /** Once set, every request fails with it: the connection is not to be trusted any more. */
  private broken: TextProtocolError | undefined;
  private connected = false;

  constructor(private readonly options: TextClientOptions) {}

  private connect(): Promise<void> {
    this.connecting ??= new Promise<void>((resolve, reject) => {
      const { host, port, timeoutMs, tls } = this.options;
      const socket = tls ? tlsConnect({ host, port, ...tls }) : createConnection({ host, port });
      this.socket = socket;
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TextProtocolError(`accepted no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      let reached = false;
      socket.once("connect", () => (reached = true));
      socket.once(tls ? "secureConnect" : "connect", () => {
        this.connected = true;
        clearTimeout(timer);
        resolve();
      });
      socket.on("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        // Once connected, a reset or a broken pipe is the peer closing on us.
        const failure = this.connected
          ? new TextProtocolError(`${this.closedReason().reason} (${err.code ?? err.message})`)
          : new TextProtocolError(
              reached && tls ? `TLS handshake failed: ${err.message}` : `could not be reached: ${err.message}`,
            );
        reject(failure);
        this.fail(failure);
      });
      socket.on("data", (chunk: Buffer) => this.received(chunk));
      socket.on("close", () => this.fail(this.closedReason()));
    });
    return this.connecting;
  }

  private whenReady(): Promise<void> {
    if (this.inHook) return this.connect();
    this.ready ??= this.connect().then(async () => {
      this.inHook = true;
      try {
        await this.options.onConnect?.(this);
      } finally {
        this.inHook = false;
      }
    });
    return this.ready;
  }

  private closedReason(): TextProtocolError {
    return this.buffer.length > 0
      ? new TextProtocolError(`answered ${quoted(this.buffer)} and closed the connection`)
      : new TextProtocolError("closed the connection without answering");
  }

  /** Every later request fails with this; a pending one now. */
  private fail(err: TextProtocolError): void {
    this.broken ??= err;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(err);
  }

  private received(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const p = this.pending;
    if (!p) {
      // Nothing was asked (memcached at its connection limit says so on accept, then closes):
      // whatever this is, a later reply could not be told from it.
      const line = this.buffer.toString("latin1").split(CRLF)[0]!;
      this.fail(
        isErrorLine(line)
          ? new TextProtocolError(`answered ${quoted(this.buffer)}`, line)
          : new TextProtocolError(`sent ${quoted(this.buffer)} unasked (protocol error)`),
      );
      this.socket?.destroy();
      return;
    }
    let parsed: Parsed;
    try {
      parsed = parseReply(this.buffer, p.expect, p.state);
    } catch (err) {
      this.fail(err as TextProtocolError);
      this.socket?.destroy();
      return;
    }
    if (!parsed.done) {
      // Keep only what is not read yet, so a long reply is copied once, not once per chunk.
      this.buffer = this.buffer.subarray(p.state.at);
      p.state.at = 0;
      return;
    }
    const extra = this.buffer.subarray(parsed.used);
    this.buffer = Buffer.alloc(0);
    this.pending = undefined;
    if (extra.length > 0) {
      const failure = new TextProtocolError(
        `answered ${quoted(extra)} after its reply, which is not memcached's protocol (protocol error)`,
      );
      p.reject(failure);
      this.fail(failure);
      this.socket?.destroy();
      return;
    }
    p.resolve(parsed.reply);
  }

  /** Sends a command line (and a data block) and waits for a whole reply, within the timeout. */
  async request(line: string, data: Buffer | undefined, expect: Expect): Promise<Reply> {
    if (this.pending) throw new Error("TextConnection: one request at a time");
    await this.whenReady();
    if (this.broken) throw this.broken;
    const socket = this.socket!;
    const { timeoutMs } = this.options;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        const reason = this.buffer.length > 0 ? `answered ${quoted(this.buffer)} and then nothing` : "gave no answer";
        this.fail(new TextProtocolError(`${reason} within ${timeoutMs} ms`));
        socket.destroy();
      }, timeoutMs);
      this.pending = {
        expect,
        state: { at: 0, entries: [], dump: [] },
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const head = Buffer.from(line + CRLF, "utf8");
      socket.write(data === undefined ? head : Buffer.concat([head, data, Buffer.from(CRLF)]));
    });
  }

  async status(line: string, data: Buffer | undefined, words: readonly StatusWord[]): Promise<StatusWord> {
    return (await this.request(line, data, { kind: "status", words })) as StatusWord;
  }

  async values(command: "get" | "gets", key: string): Promise<ValueReply | undefined> {
    // Reply lines are read byte for byte (latin1): the key as it comes back is its UTF-8 bytes.
    const wire = Buffer.from(key, "utf8").toString("latin1");
    const found = (await this.request(`${command} ${key}`, undefined, {
      kind: "values",
      keys: [wire],
      withCas: command === "gets",
    })) as ValueReply[];
    if (found.length > 1) throw new TextProtocolError(`answered ${found.length} values for one key (protocol error)`);
    return found[0];
  }

  async version(): Promise<string> {
    return ((await this.request("version", undefined, { kind: "version" })) as { version: string }).version;
  }

  async metadump(): Promise<DumpEntry[]> {
    return (await this.request("lru_crawler metadump all", undefined, { kind: "dump" })) as DumpEntry[];
  }

  close(): void {
    this.broken ??= new TextProtocolError("was closed by this client");
    this.socket?.end();
    this.socket?.destroy();
  }
}
