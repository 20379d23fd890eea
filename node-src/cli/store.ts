/**
 * The CLI's view of the store: memcached, or a proxy in front of it (twemproxy), through the
 * classic text protocol (memcached-text.ts). A write counts only when the server acknowledged it;
 * everything else — refused, closed, timed out, an error line, a reply no memcached sends —
 * becomes a StoreError naming the store, the command and what it answered.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { ConnectionOptions } from "node:tls";
import type { Credentials } from "../../lua-src/gray/options.ts";
import { TextConnection, TextProtocolError, type StatusWord } from "./memcached-text.ts";

export class StoreError extends Error {}

/** memcached reads an expiry above 30 days as a Unix time, not a duration. */
const MAX_RELATIVE_TTL_S = 30 * 24 * 3600;

const SERVER_ERROR_TRIES = 3;
const SERVER_ERROR_RETRY_MS = 250;

/** Connect, and each request from sending to the whole reply. */
export const STORE_TIMEOUT_MS = 2000;

export interface KeyInfo {
  key: string;
  /** Unix time it expires, or undefined for never. */
  expires: number | undefined;
}

/** "host:port" or "[v6]:port" → its parts; undefined when it is not that. */
export function parseHostPort(address: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

/** memcached's own limits on a key; the CLI's keys are checked long before (IPs, user ids, --prefix). */
function assertKey(key: string): void {
  const bytes = Buffer.from(key, "utf8");
  if (bytes.length === 0 || bytes.length > 250 || bytes.some((b) => b <= 32 || b === 127)) {
    throw new Error(
      `not a memcached text-protocol key (1-250 bytes, no spaces or control characters): ${JSON.stringify(key)}`,
    );
  }
}

/** metadump URL-encodes keys; bytes that are not UTF-8 stay encoded (such a key is none the CLI writes). */
function decodeKey(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    return encoded;
  }
}

export interface StoreOptions {
  timeoutMs?: number;
  /** memcached -Y's credentials, sent on the connection before any request. */
  auth?: Credentials;
  /** memcached -Z: TLS, verified against these options' CA (else Node's own). */
  tls?: ConnectionOptions;
}

/** What every store this process opens uses unless told otherwise: the CLI's --auth-file and --tls. */
let defaults: StoreOptions = {};
export function useStoreDefaults(options: StoreOptions): void {
  defaults = options;
}

/** The -Y login: a set whose data is "<user> <password>", answered STORED. */
async function login(connection: TextConnection, auth: Credentials): Promise<void> {
  const data = Buffer.from(`${auth.user} ${auth.password}`, "utf8");
  const reply = await connection.status(`set gray-auth 0 0 ${data.length}`, data, ["STORED", "NOT_STORED"]);
  if (reply !== "STORED") throw new TextProtocolError(`answered ${JSON.stringify(reply)}`);
}

export class AdminStore {
  private readonly connection: TextConnection;

  constructor(
    readonly address: string,
    given: StoreOptions = {},
  ) {
    const target = parseHostPort(address);
    if (target === undefined) throw new StoreError(`not a memcached address (HOST:PORT): ${JSON.stringify(address)}`);
    const options = { ...defaults, ...given };
    const auth = options.auth;
    this.connection = new TextConnection({
      ...target,
      timeoutMs: options.timeoutMs ?? STORE_TIMEOUT_MS,
      tls: options.tls,
      onConnect:
        auth === undefined
          ? undefined
          : (c) => this.ask(`login as ${auth.user}`, "authentication failed", () => login(c, auth)),
    });
  }

  /**
   * Runs one request; a failure names the store, the command, and what the store did. A
   * SERVER_ERROR is tried again (twice, 250 ms apart): twemproxy answers it for a request that met
   * a failing node, and its own notes ask clients to retry, since the next may meet the node's
   * replacement. Every command the CLI sends may be repeated: a cas that had landed answers EXISTS,
   * which an edit treats as a lost race and re-reads.
   */
  private async ask<T>(command: string, outcome: string, run: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (err) {
        if (!(err instanceof TextProtocolError)) throw err;
        if (attempt < SERVER_ERROR_TRIES && err.rejection?.startsWith("SERVER_ERROR") === true) {
          await sleep(SERVER_ERROR_RETRY_MS);
          continue;
        }
        throw new StoreError(`memcached at ${this.address}: ${command}: ${outcome}: it ${err.reason}`);
      }
    }
  }

  private expiry(ttlSeconds: number): number {
    return ttlSeconds > MAX_RELATIVE_TTL_S ? Math.floor(Date.now() / 1000) + ttlSeconds : ttlSeconds;
  }

  /** A storage command that must be answered with one of `accepted`. */
  private store(
    verb: "set" | "add" | "cas",
    key: string,
    value: string,
    ttlSeconds: number,
    cas: string | undefined,
    accepted: readonly StatusWord[],
  ) {
    assertKey(key);
    const data = Buffer.from(value, "utf8");
    const line = `${verb} ${key} 0 ${this.expiry(ttlSeconds)} ${data.length}${cas === undefined ? "" : ` ${cas}`}`;
    return this.ask(`${verb} ${key}`, "not written", async () => {
      const reply = await this.connection.status(line, data, ["STORED", "NOT_STORED", "EXISTS", "NOT_FOUND"]);
      if (!accepted.includes(reply)) throw new TextProtocolError(`answered ${JSON.stringify(reply)}`);
      return reply;
    });
  }

  async get(key: string): Promise<string | undefined> {
    assertKey(key);
    const found = await this.ask(`get ${key}`, "not read", () => this.connection.values("get", key));
    return found?.value.toString("utf8");
  }

  /** The value and its compare-and-swap token, for cas(). */
  async gets(key: string): Promise<{ value: string; cas: string } | undefined> {
    assertKey(key);
    const found = await this.ask(`gets ${key}`, "not read", () => this.connection.values("gets", key));
    return found === undefined ? undefined : { value: found.value.toString("utf8"), cas: found.cas! };
  }

  /** Resolves only once the server answered STORED. */
  async set(key: string, value: string, ttlSeconds = 0): Promise<void> {
    await this.store("set", key, value, ttlSeconds, undefined, ["STORED"]);
  }

  /** True when stored, false when the key already existed (NOT_STORED). */
  async add(key: string, value: string, ttlSeconds = 0): Promise<boolean> {
    return (await this.store("add", key, value, ttlSeconds, undefined, ["STORED", "NOT_STORED"])) === "STORED";
  }

  /** "stored", or why not: someone changed it since gets ("exists"), or it is gone ("not_found"). */
  async cas(key: string, value: string, cas: string, ttlSeconds = 0): Promise<"stored" | "exists" | "not_found"> {
    const reply = await this.store("cas", key, value, ttlSeconds, cas, ["STORED", "EXISTS", "NOT_FOUND"]);
    return reply === "STORED" ? "stored" : reply === "EXISTS" ? "exists" : "not_found";
  }

  /** True when the key was there (DELETED), false when it was already gone (NOT_FOUND). */
  async delete(key: string): Promise<boolean> {
    assertKey(key);
    const reply = await this.ask(`delete ${key}`, "not deleted", () =>
      this.connection.status(`delete ${key}`, undefined, ["DELETED", "NOT_FOUND"]),
    );
    return reply === "DELETED";
  }

  /** True when the key was there and now expires after ttlSeconds. */
  async touch(key: string, ttlSeconds: number): Promise<boolean> {
    assertKey(key);
    const reply = await this.ask(`touch ${key}`, "not touched", () =>
      this.connection.status(`touch ${key} ${this.expiry(ttlSeconds)}`, undefined, ["TOUCHED", "NOT_FOUND"]),
    );
    return reply === "TOUCHED";
  }

  async version(): Promise<string> {
    return this.ask("version", "no version", () => this.connection.version());
  }

  /**
   * Every key with its expiry, by `lru_crawler metadump all`: only memcached itself answers it
   * (twemproxy closes the connection on it, as on any command it does not forward).
   */
  async keys(): Promise<KeyInfo[]> {
    const entries = await this.ask("lru_crawler metadump all", "keys not listed", () => this.connection.metadump());
    return entries.map(({ key, exp }) => ({ key: decodeKey(key), expires: exp > 0 ? exp : undefined }));
  }

  close(): void {
    this.connection.close();
  }
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
