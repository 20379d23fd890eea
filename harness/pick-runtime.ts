/**
 * Chooses the runtime: GRAY_RUNTIME=containers|native picks one; unset, containers when a
 * Docker engine answers. The runtimes are imported lazily so native runs never load testcontainers.
 */
import type { Runtime, RuntimeName } from "./runtime.ts";

async function dockerAnswers(): Promise<boolean> {
  const { getContainerRuntimeClient } = await import("testcontainers");
  try {
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

export async function pickRuntimeName(requested = process.env.GRAY_RUNTIME): Promise<RuntimeName> {
  if (requested === "containers" || requested === "native") return requested;
  if (requested !== undefined && requested !== "" && requested !== "auto") {
    throw new Error(`GRAY_RUNTIME must be containers, native or auto (got "${requested}")`);
  }
  return (await dockerAnswers()) ? "containers" : "native";
}

export async function createRuntime(name?: RuntimeName): Promise<Runtime> {
  const picked = name ?? (await pickRuntimeName());
  if (picked === "containers") {
    const { ContainerRuntime } = await import("./containers.ts");
    return new ContainerRuntime();
  }
  const { NativeRuntime } = await import("./native.ts");
  return new NativeRuntime();
}
