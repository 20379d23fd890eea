/**
 * npm run demo: the router, two demo backends (stable, canary) and memcached on the default
 * runtime. Prints the URL and how to flag a client; Ctrl-C stops everything.
 * npm run demo -- --fleet: two routers, three memcached behind nutcracker (harness/fleet.ts).
 */
import { Fleet } from "./fleet.ts";
import { GRAY_BIN } from "./gray-cli.ts";
import { MemcachedServer } from "./memcached.ts";
import { createRuntime } from "./pick-runtime.ts";
import { editDocument } from "./rules.ts";
import { RouterStack } from "./stack.ts";

const runtime = await createRuntime();

/** Holds the process open (containers leave Node nothing to wait on) until Ctrl-C, then runs stop. */
function holdUntilStopped(stop: () => Promise<unknown>): void {
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(keepAlive);
    console.log("\nstopping...");
    await stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void shutdown());
  process.on("SIGTERM", () => void shutdown());
}

if (process.argv.includes("--fleet")) {
  const fleet = await Fleet.start({ runtime, routers: 2, nodes: 3, options: { ip_keys: false } });
  // A first revision, so `gray add` has a document to build on.
  await editDocument(fleet.address, "", "demo: start", () => undefined).catch(async (err: unknown) => {
    await fleet.stop();
    throw err;
  });
  const [a, b] = fleet.routers as [RouterStack, RouterStack];
  const port = fleet.nodes[0]!.port;
  const kill =
    runtime.name === "native"
      ? `kill -9 $(pgrep -f 'memcached -l 127.0.0.1 -p ${port} ')`
      : `docker kill $(docker ps --no-trunc --format '{{.ID}} {{.Command}}' | grep -- '-p ${port} ' | cut -d' ' -f1)`;
  console.log(`a fleet on ${runtime.name}: 2 routers, nutcracker on ${fleet.address} (ketama, ejects a failing node for ${fleet.proxy.retryTimeoutMs} ms)
in front of memcached ${fleet.nodes.map((n) => n.address).join(", ")}

  alias gray='node ${GRAY_BIN}'; M="--memcached ${fleet.address}"
  A=${a.url} B=${b.url}
  curl $A/; curl $B/                                            -> stable, stable
  gray add 127.0.0.5 $M                                         # one revision, through nutcracker
  curl --interface 127.0.0.5 $A/; curl --interface 127.0.0.5 $B/   -> canary, canary (within 0.5 s)
  gray weight 30 $M; gray list $M
  for i in $(seq 9); do echo $(curl -s --interface 127.0.1.$i $A/) $(curl -s --interface 127.0.1.$i $B/); done
                                                                -> each client the same route on both
  curl -s $A/gray/status                                        # its revision, age, last_error
  ${kill}
  gray add 127.0.0.6 $M     -> routes stay; edits work again once nutcracker ejects the node (retry on SERVER_ERROR)

Ctrl-C to stop.`);
  holdUntilStopped(() => fleet.stop());
} else {
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

  holdUntilStopped(() => Promise.allSettled([router.stop(), memcached.stop()]));
}
