/**
 * Writes flags into memcached the way an operator would, through a real client: memjs (binary
 * protocol) on an open store; on a locked one (-Y credentials, -Z TLS), which memjs cannot speak
 * to, the CLI's text-protocol client, logged in and over TLS.
 */
import { once } from "node:events";
import { connect } from "node:net";
import memjs from "memjs";
import { AdminStore, parseHostPort } from "../node-src/cli/store.ts";
import { type MemcachedLock, askMemcached, parseStats } from "./memcached.ts";

export class FlagStore {
  private readonly client: memjs.Client | undefined;
  private readonly lock: MemcachedLock | undefined;

  /** With a lock (credentials and/or TLS), every method goes through the text protocol instead of memjs. */
  constructor(
    private readonly address: string,
    lock: MemcachedLock = {},
  ) {
    if (lock.auth !== undefined || lock.tls !== undefined) {
      this.lock = { auth: lock.auth, tls: lock.tls };
      return;
    }
    // 127.0.0.1, never "localhost": Node may resolve that to ::1, where memcached does not listen.
    this.client = memjs.Client.create(address, { retries: 0, timeout: 2, logger: { log: () => undefined } });
  }

  /**
   * A connection of its own per call (memjs reconnects after a store restart; so does this), with
   * exactly the lock's options, whatever the process's store defaults are.
   */
  private async text<T>(work: (store: AdminStore) => Promise<T>): Promise<T> {
    const store = new AdminStore(this.address, { auth: this.lock!.auth, tls: this.lock!.tls });
    try {
      return await work(store);
    } finally {
      store.close();
    }
  }

  /** A text-protocol command AdminStore does not send (flush_all, stats), logged in and over TLS. */
  private ask(command: string, end: RegExp): Promise<string> {
    return askMemcached(parseHostPort(this.address)!, command, end, this.lock);
  }

  /** A string goes as UTF-8; a Buffer as its bytes (e.g. a text that is not UTF-8, on purpose). */
  async set(key: string, value: string | Buffer = "1", ttlSeconds = 0): Promise<void> {
    if (this.client === undefined) return this.text((s) => s.set(key, value, ttlSeconds));
    const ok = await this.client.set(key, value, { expires: ttlSeconds });
    if (!ok) throw new Error(`memcached refused to store ${key}`);
  }

  async get(key: string): Promise<string | undefined> {
    if (this.client === undefined) return this.text((s) => s.get(key));
    const { value } = await this.client.get(key);
    return value === null ? undefined : value.toString();
  }

  async delete(key: string): Promise<void> {
    if (this.client === undefined) {
      await this.text((s) => s.delete(key));
      return;
    }
    await this.client.delete(key);
  }

  async flush(): Promise<void> {
    if (this.client === undefined) {
      const reply = await this.ask("flush_all", /\r\n$/);
      if (reply !== "OK\r\n") throw new Error(`flush_all on ${this.address}: ${reply.trim()}`);
      return;
    }
    await this.client.flush();
  }

  /** memcached's `stats` (cmd_get, get_hits, ...), as text. */
  async stats(): Promise<Record<string, string>> {
    if (this.client === undefined) {
      return parseStats(await this.ask("stats", /END\r\n$/));
    }
    const client = this.client;
    return new Promise((resolve, reject) => {
      client.stats((err, _server, stats) => (err || !stats ? reject(err ?? new Error("no stats")) : resolve(stats)));
    });
  }

  /** Items memcached has evicted to make room since it started. */
  async evictions(): Promise<number> {
    return Number((await this.stats()).evictions);
  }

  close(): void {
    this.client?.close();
  }
}

/**
 * Stores many keys fast: text-protocol sets with noreply, pipelined on one socket, then a meta
 * no-op ("mn", answered "MN") once memcached has handled everything before it. For the
 * benchmark's million flags; memjs would wait for a reply per key.
 */
export async function bulkSet(address: string, keys: Iterable<string>, value = "1"): Promise<number> {
  const [host, port] = address.split(":");
  const socket = connect({ host, port: Number(port) });
  socket.setNoDelay(true);
  await once(socket, "connect");
  let count = 0;
  let batch = "";
  for (const key of keys) {
    batch += `set ${key} 0 0 ${Buffer.byteLength(value)} noreply\r\n${value}\r\n`;
    count++;
    if (batch.length > 64 * 1024) {
      if (!socket.write(batch)) await once(socket, "drain");
      batch = "";
    }
  }
  socket.write(batch + "mn\r\n");
  let reply = "";
  for await (const chunk of socket) {
    reply += String(chunk);
    if (reply.includes("MN\r\n")) break;
    if (/ERROR/.test(reply)) throw new Error(`memcached refused a bulk set: ${reply.trim()}`);
  }
  socket.destroy();
  return count;
}
