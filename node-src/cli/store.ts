/**
 * The CLI's view of memcached: get/set/delete through memjs (binary protocol), and the key
 * listing `gray list` needs through `lru_crawler metadump`, which only the text protocol has.
 * Every failure becomes a StoreError naming the address that was tried.
 */
import { createConnection } from "node:net";
import memjs from "memjs";

export class StoreError extends Error {}

/** memcached reads an expiry above 30 days as a Unix time, not a duration. */
const MAX_RELATIVE_TTL_S = 30 * 24 * 3600;

export interface KeyInfo {
  key: string;
  /** Unix time it expires, or undefined for never. */
  expires: number | undefined;
}

/** "host:port" or "[v6]:port" → its parts; undefined when it is not that. */
export function parseHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

export class AdminStore {
  private readonly client: memjs.Client;

  constructor(readonly address: string) {
    this.client = memjs.Client.create(address, { retries: 0, timeout: 2, conntimeout: 2, logger: { log: () => undefined } });
  }

  private failed(what: string, err: unknown): StoreError {
    const reason = err instanceof Error ? err.message : String(err);
    return new StoreError(`cannot ${what} memcached at ${this.address}: ${reason}`);
  }

  async get(key: string): Promise<string | undefined> {
    try {
      const { value } = await this.client.get(key);
      return value === null ? undefined : value.toString("latin1");
    } catch (err) {
      throw this.failed("read from", err);
    }
  }

  async set(key: string, value: string, ttlSeconds = 0): Promise<void> {
    const expires = ttlSeconds > MAX_RELATIVE_TTL_S ? Math.floor(Date.now() / 1000) + ttlSeconds : ttlSeconds;
    let ok: boolean;
    try {
      ok = await this.client.set(key, Buffer.from(value, "latin1"), { expires });
    } catch (err) {
      throw this.failed("write to", err);
    }
    if (!ok) throw new StoreError(`memcached at ${this.address} refused to store ${key}`);
  }

  /** True when the key was there. */
  async delete(key: string): Promise<boolean> {
    try {
      return await this.client.delete(key);
    } catch (err) {
      throw this.failed("write to", err);
    }
  }

  /** Every key in memcached with its expiry (lru_crawler metadump all). */
  keys(): Promise<KeyInfo[]> {
    const target = parseHostPort(this.address)!;
    return new Promise((resolve, reject) => {
      const socket = createConnection(target);
      const chunks: Buffer[] = [];
      const fail = (err: unknown) => {
        socket.destroy();
        reject(this.failed("list keys of", err));
      };
      socket.setTimeout(10000, () => fail(new Error("timed out")));
      socket.on("error", fail);
      socket.on("connect", () => socket.write("lru_crawler metadump all\r\n"));
      socket.on("data", (chunk) => {
        chunks.push(chunk);
        const text = Buffer.concat(chunks).toString("latin1");
        if (/^(ERROR|CLIENT_ERROR|SERVER_ERROR|BUSY)/m.test(text) && !text.includes("key=")) {
          fail(new Error(text.trim()));
        } else if (text.endsWith("END\r\n")) {
          socket.end();
          resolve(parseMetadump(text));
        }
      });
    });
  }

  close(): void {
    this.client.close();
  }
}

/** Lines "key=<url-encoded> exp=<unix time or -1> la=... ", ended by \n (the final END by \r\n). */
export function parseMetadump(text: string): KeyInfo[] {
  const out: KeyInfo[] = [];
  for (const line of text.split(/\r?\n/)) {
    const key = /^key=(\S+)/.exec(line);
    if (!key) continue;
    const exp = /\bexp=(-?\d+)/.exec(line);
    const expires = exp && Number(exp[1]) > 0 ? Number(exp[1]) : undefined;
    out.push({ key: decodeURIComponent(key[1]!), expires });
  }
  return out;
}

/** Runs with a store that is always closed, whatever happens. */
export async function withStore<T>(address: string, work: (store: AdminStore) => Promise<T>): Promise<T> {
  const store = new AdminStore(address);
  try {
    return await work(store);
  } finally {
    store.close();
  }
}
