/** Loopback ports: finding free ones and waiting for a server to listen. */
import { type Server, createConnection, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/** A port the kernel just handed out on 127.0.0.1 and took back; free unless someone races for it. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/** Starts `server` listening on a free port of 127.0.0.1 and returns the port. */
export async function listenOnLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("listening, but on no TCP port");
  return address.port;
}

export function canConnect(port: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Resolves once something accepts connections on the port; rejects with gaveUp()'s message as
 * soon as it returns one (the process died), or after the timeout.
 */
export async function waitForPort(
  port: number,
  gaveUp: () => string | undefined,
  timeoutMs = 15000,
  host = "127.0.0.1",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const failure = gaveUp();
    if (failure !== undefined) throw new Error(failure);
    if (await canConnect(port, host)) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(25);
  }
}
