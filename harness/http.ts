/**
 * HTTP from chosen loopback source addresses: each 127.0.0.x is a different client to nginx,
 * so tests simulate clients the way the network does, not with spoofable headers.
 */
import { Agent, request } from "undici";

export interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  ms: number;
}

export interface Ask {
  /** Source address: 127.0.0.0/8, or ::1 for an IPv6 client. */
  from?: string;
  headers?: Record<string, string> | string[];
  timeoutMs?: number;
  /** Close the connection after the reply, so the next request opens a new one (and may meet another worker). */
  fresh?: boolean;
}

const agents = new Map<string, Agent>();

function agentFor(from: string): Agent {
  let agent = agents.get(from);
  if (!agent) {
    agent = new Agent({ localAddress: from, keepAliveTimeout: 1000 });
    agents.set(from, agent);
  }
  return agent;
}

export async function get(url: string, ask: Ask = {}): Promise<Reply> {
  const from = ask.from ?? "127.0.0.1";
  const started = performance.now();
  const res = await request(url, {
    dispatcher: agentFor(from),
    headers: ask.headers,
    reset: ask.fresh ?? false,
    headersTimeout: ask.timeoutMs ?? 10000,
    bodyTimeout: ask.timeoutMs ?? 10000,
  });
  const body = await res.body.text();
  return { status: res.statusCode, body, headers: res.headers, ms: performance.now() - started };
}

/** Drops pooled connections, e.g. so the next request meets the workers of a reloaded config. */
export async function closeAgents(): Promise<void> {
  const all = [...agents.values()];
  agents.clear();
  await Promise.all(all.map((a) => a.close()));
}
