/** The command line shared by the scripts that print a README table: [--runtime native|containers|both] [--seconds S]. */
import { parseArgs } from "node:util";
import type { RuntimeName } from "../harness/runtime.ts";

export function tableArgs(defaultSeconds: number): { seconds: number; runtimes: RuntimeName[] } {
  const { values } = parseArgs({
    options: {
      runtime: { type: "string", default: "both" },
      seconds: { type: "string", default: String(defaultSeconds) },
    },
  });
  const seconds = Number(values.seconds);
  if (!(seconds > 0 && seconds <= 600)) throw new Error(`--seconds must be from 1 to 600: ${values.seconds}`);
  if (!["native", "containers", "both"].includes(values.runtime))
    throw new Error(`--runtime must be native, containers or both: ${values.runtime}`);
  return { seconds, runtimes: values.runtime === "both" ? ["native", "containers"] : [values.runtime as RuntimeName] };
}
