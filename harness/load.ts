/**
 * A load driver for release scenarios and chaos tests: a fixed set of clients, each its own
 * loopback source address holding one keep-alive connection like a browser tab, sending GETs one
 * after another until the time or request budget runs out. Every request's outcome is recorded.
 *
 * A reset of a reused idle keep-alive connection is retried once, as browsers and undici's
 * retry handler do (the server may close an idle connection just as a request goes out; nginx
 * does so on reload). The reset is still counted; the request fails only if the retry does too.
 */
import { Client, errors } from "undici";

export interface LoadOptions {
  /** Where every request goes (GET). */
  url: string;
  /** Concurrent clients; each is one source address and one keep-alive connection. */
  clients?: number;
  /** Source addresses, one per client (default: loopbackClients(clients)). */
  sources?: string[];
  /** The load stops by itself after this long. */
  durationMs: number;
  /** ... or after this many requests, whichever comes first. */
  maxRequests?: number;
  /** Pause between one client's requests. */
  thinkMs?: number;
  /** Per request: no answer within this is a failure of kind "timeout". */
  timeoutMs?: number;
  /** Request headers; a function gives each request its own (e.g. a new X-Real-IP each time, for many distinct clients). */
  headers?: Record<string, string> | (() => Record<string, string>);
  /** What a 2xx answer counts as in `routes` (default: the body, trimmed: "stable", "canary", "v2", ...). */
  label?: (reply: { status: number; body: string; headers: Record<string, string | string[] | undefined> }) => string;
}

export type ErrorKind = "reset" | "refused" | "timeout" | "other";

export interface LoadRecord {
  /** The client's source address. */
  from: string;
  /** ms since the load started, when the request was first sent. */
  at: number;
  /** The final status, 0 when no answer came. */
  status: number;
  /** label() of a 2xx answer, else "". */
  route: string;
  /** Latency including the retry, if there was one. */
  ms: number;
  error?: ErrorKind;
  /** A reset of a reused idle connection that was retried. */
  retried: boolean;
}

export interface LoadSummary {
  sent: number;
  /** Requests that ended without a 2xx answer (after the one retry a reset allows). */
  failed: number;
  /** Of those, the ones answered with a non-2xx status. */
  non2xx: number;
  /** Raw connection resets seen, including the ones a retry recovered from. */
  resets: number;
  /** Failures by error kind (requests that got no answer at all). */
  errors: Partial<Record<ErrorKind, number>>;
  /** 2xx answers by label. */
  routes: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** From the first request sent to the last one finished. */
  durationMs: number;
}

/** n distinct source addresses in 127.<net>.0.0/16 (each a different client to nginx). */
export function loopbackClients(n: number, net = 100): string[] {
  return Array.from({ length: n }, (_, i) => `127.${net}.${Math.floor(i / 250)}.${(i % 250) + 1}`);
}

function kindOf(err: unknown): ErrorKind {
  const code = (err as { code?: string }).code;
  if (code === "ECONNREFUSED") return "refused";
  if (code === "ECONNRESET" || code === "EPIPE" || err instanceof errors.SocketError) return "reset";
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT" || code === "UND_ERR_CONNECT_TIMEOUT")
    return "timeout";
  return "other";
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summarize(records: LoadRecord[], resets: number): LoadSummary {
  const ms = records.map((r) => r.ms).sort((a, b) => a - b);
  const routes: Record<string, number> = {};
  const errorsByKind: Partial<Record<ErrorKind, number>> = {};
  let failed = 0;
  let non2xx = 0;
  for (const r of records) {
    if (r.status >= 200 && r.status < 300) {
      routes[r.route] = (routes[r.route] ?? 0) + 1;
      continue;
    }
    failed++;
    if (r.status !== 0) non2xx++;
    if (r.error) errorsByKind[r.error] = (errorsByKind[r.error] ?? 0) + 1;
  }
  const first = records.reduce((m, r) => Math.min(m, r.at), Infinity);
  const last = records.reduce((m, r) => Math.max(m, r.at + r.ms), 0);
  return {
    sent: records.length,
    failed,
    non2xx,
    resets,
    errors: errorsByKind,
    routes,
    p50Ms: percentile(ms, 50),
    p99Ms: percentile(ms, 99),
    maxMs: ms.at(-1) ?? 0,
    durationMs: records.length ? last - first : 0,
  };
}

/** One client: a source address, one keep-alive connection, requests one at a time. */
class LoadClient {
  private readonly client: Client;
  /** Answers completed on the current connection: above 0, the connection is a reused one. */
  private servedOnConnection = 0;

  constructor(
    origin: string,
    private readonly from: string,
    private readonly options: LoadOptions,
  ) {
    const timeout = options.timeoutMs ?? 5000;
    this.client = new Client(origin, {
      localAddress: from,
      pipelining: 1,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    this.client.on("disconnect", () => (this.servedOnConnection = 0));
  }

  private async once(path: string): Promise<{ status: number; route: string }> {
    const headers = typeof this.options.headers === "function" ? this.options.headers() : this.options.headers;
    const res = await this.client.request({ path, method: "GET", headers });
    const body = await res.body.text();
    this.servedOnConnection++;
    const ok = res.statusCode >= 200 && res.statusCode < 300;
    const route = ok
      ? (this.options.label?.({ status: res.statusCode, body, headers: res.headers }) ?? body.trim())
      : "";
    return { status: res.statusCode, route };
  }

  /** One request, retried once if a reused idle connection was reset under it. */
  async send(path: string, at: number, onReset: () => void): Promise<LoadRecord> {
    const started = performance.now();
    let retried = false;
    for (;;) {
      const reused = this.servedOnConnection > 0;
      try {
        const { status, route } = await this.once(path);
        return { from: this.from, at, status, route, ms: performance.now() - started, retried };
      } catch (err) {
        const error = kindOf(err);
        if (error === "reset") onReset();
        if (error === "reset" && reused && !retried) {
          retried = true;
          continue;
        }
        return { from: this.from, at, status: 0, route: "", ms: performance.now() - started, error, retried };
      }
    }
  }

  close(): Promise<void> {
    return this.client.destroy();
  }
}

export class Load {
  readonly records: LoadRecord[] = [];
  private resetTimes: number[] = [];
  private stopping = false;
  /** performance.now() when it started: puts several loads' records on one clock. */
  readonly started = performance.now();
  private readonly finished: Promise<LoadSummary>;

  private constructor(private readonly options: LoadOptions) {
    const url = new URL(options.url);
    const sources = options.sources ?? loopbackClients(options.clients ?? 16);
    const deadline = this.started + options.durationMs;
    const budget = options.maxRequests ?? Math.ceil(options.durationMs * 20);
    const path = url.pathname + url.search;
    const loops = sources.map(async (from) => {
      const client = new LoadClient(url.origin, from, options);
      try {
        while (!this.stopping && performance.now() < deadline && this.records.length < budget) {
          const record = await client.send(path, this.now(), () => this.resetTimes.push(this.now()));
          this.records.push(record);
          if (options.thinkMs) await new Promise((r) => setTimeout(r, options.thinkMs));
        }
      } finally {
        await client.close();
      }
    });
    this.finished = Promise.all(loops).then(() => this.summary());
  }

  static start(options: LoadOptions): Load {
    return new Load(options);
  }

  /** ms since the load started: a mark to summarize from. */
  now(): number {
    return performance.now() - this.started;
  }

  /** The requests sent in [fromMs, toMs), e.g. after a step of a scenario. */
  summary(fromMs = 0, toMs = Infinity): LoadSummary {
    const inWindow = (t: number) => t >= fromMs && t < toMs;
    return summarize(
      this.records.filter((r) => inWindow(r.at)),
      this.resetTimes.filter(inWindow).length,
    );
  }

  /** The summary of several loads run side by side (e.g. the main traffic and a probe client), on the first one's clock. */
  static combined(loads: Load[]): LoadSummary {
    const origin = Math.min(...loads.map((l) => l.started));
    const shift = (load: Load) => load.started - origin;
    return summarize(
      loads.flatMap((l) => l.records.map((r) => ({ ...r, at: r.at + shift(l) }))),
      loads.reduce((n, l) => n + l.resetTimes.length, 0),
    );
  }

  /** Resolves when the load has stopped by itself (time or request budget). */
  done(): Promise<LoadSummary> {
    return this.finished;
  }

  /** Stops early: in-flight requests finish, then the summary of everything. */
  stop(): Promise<LoadSummary> {
    this.stopping = true;
    return this.finished;
  }
}
