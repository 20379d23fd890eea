/** Writes flags into memcached the way an operator would, through a real client (memjs, binary protocol). */
import memjs from "memjs";

export class FlagStore {
  private readonly client: memjs.Client;

  constructor(address: string) {
    // 127.0.0.1, never "localhost": Node may resolve that to ::1, where memcached does not listen.
    this.client = memjs.Client.create(address, { retries: 0, timeout: 2, logger: { log: () => undefined } });
  }

  async set(key: string, value = "1", ttlSeconds = 0): Promise<void> {
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

  close(): void {
    this.client.close();
  }
}
