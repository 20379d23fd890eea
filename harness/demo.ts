/**
 * npm run demo: the router, two demo backends (stable, canary) and memcached on the default
 * runtime. Prints the URL and how to flag a client; Ctrl-C stops everything.
 */
import { MemcachedServer } from "./memcached.ts";
import { createRuntime } from "./pick-runtime.ts";
import { RouterStack } from "./stack.ts";

const runtime = await createRuntime();
const memcached = await MemcachedServer.start(runtime);
let router: RouterStack;
try {
  router = await RouterStack.start({ runtime, memcached, options: { debug_header: "X-Gray-Route" }, ipv6: true });
} catch (err) {
  await memcached.stop();
  throw err;
}

const mc = `127.0.0.1 ${memcached.port}`;
console.log(`gray router on ${runtime.name} (${runtime.flavour} nginx), memcached on ${memcached.address}

  router:  ${router.url}/  (also ${router.url6}/)

  curl ${router.url}/                                  -> stable
  printf 'set 127.0.0.1 0 3600 1\\r\\n1\\r\\n' | nc -q1 ${mc}   # flag 127.0.0.1
  curl ${router.url}/                                  -> canary
  curl --interface 127.0.0.2 ${router.url}/            -> stable (another client)
  printf 'delete 127.0.0.1\\r\\n' | nc -q1 ${mc}               # unflag it
  curl -i ${router.url}/                               -> stable, with X-Gray-Route: stable

Ctrl-C to stop.`);

// Containers leave Node nothing to wait on: hold the process open until asked to stop.
const keepAlive = setInterval(() => undefined, 1 << 30);
let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  clearInterval(keepAlive);
  console.log("\nstopping...");
  await Promise.allSettled([router.stop(), memcached.stop()]);
  process.exit(0);
}
process.on("SIGINT", () => void shutdown());
process.on("SIGTERM", () => void shutdown());
