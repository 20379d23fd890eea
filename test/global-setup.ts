/** Starts what every integration file shares, once: the runtime choice and one memcached. */
import type { TestProject } from "vitest/node";
import { MemcachedServer } from "../harness/memcached.ts";
import { createRuntime } from "../harness/pick-runtime.ts";

declare module "vitest" {
  export interface ProvidedContext {
    runtime: "containers" | "native";
    memcachedPort: number;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const runtime = await createRuntime();
  const memcached = await MemcachedServer.start(runtime);
  project.provide("runtime", runtime.name);
  project.provide("memcachedPort", memcached.port);
  console.log(`integration runtime: ${runtime.name} (${runtime.flavour} nginx), memcached ${memcached.address}`);
  return () => memcached.stop();
}
