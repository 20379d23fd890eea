/** Writes flags into memcached the way an operator would, through a real client (memjs, binary protocol). */
import { once } from "node:events";
import { connect } from "node:net";
import memjs from "memjs";

export class FlagStore {
  private readonly client: memjs.Client;

  constructor(address: string) {
    // 127.0.0.1, never "localhost": Node may resolve that to ::1, where memcached does not listen.
    this.client = memjs.Client.create(address, { retries: 0, timeout: 2, logger: { log: () => undefined } });
  }

  /** A string goes as UTF-8; a Buffer as its bytes (e.g. a text that is not UTF-8, on purpose). */
  async set(key: string, value: string | Buffer = "1", ttlSeconds = 0): Promise<void> {
    const ok = await this.client.set(key, value, { expires: ttlSeconds });
    if (!ok) throw new Error(`memcached refused to store ${key}`);
  }

  async get(key: string): Promise<string | undefined> {
    const { value } = await this.client.get(key);
    return value === null ? undefined : value.toString();
  }

  async delete(key: string): Promise<void> {
    await this.client.delete(key);
  }

  async flush(): Promise<void> {
    await this.client.flush();
  }

  /** memcached's `stats` (cmd_get, get_hits, ...), as text. */
  stats(): Promise<Record<string, string>> {
    return new Promise((resolve, reject) => {
      this.client.stats((err, _server, stats) =>
        err || !stats ? reject(err ?? new Error("no stats")) : resolve(stats),
      );
    });
  }

  /** Items memcached has evicted to make room since it started. */
  evictions(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.client.stats((err, _server, stats) =>
        err || !stats ? reject(err ?? new Error("no stats")) : resolve(Number(stats.evictions)),
      );
    });
  }

  close(): void {
    this.client.close();
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
