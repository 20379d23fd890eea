/**
 * `gray reload`: nginx -t, HUP, and the master's verdict read back from error.log — because
 * `nginx -s reload` exits 0 even when the master then refuses the new configuration.
 */
import { reloadMaster } from "../../nginx-master.ts";
import { type Command, noArgs, stringFlag } from "../command.ts";
import { pidFileOf, pidFileOption } from "../shared-flags.ts";

export const reload: Command = {
  name: "reload",
  usage: "gray reload --pid-file PATH [--error-log PATH]",
  summary:
    "reload nginx and say whether the new workers took the configuration (exit 1 with error.log's reason when they did not)",
  flags: [
    "  --pid-file PATH        nginx's pid file (its pid directive)",
    "  --error-log PATH       nginx's error.log (default: the master's -e argument)",
  ],
  options: { ...pidFileOption, "error-log": { type: "string" } },
  prepare: (ctx) => {
    noArgs(ctx);
    const pidFile = pidFileOf(ctx);
    const errorLog = stringFlag(ctx, "error-log");
    return async () => {
      const outcome = await reloadMaster(pidFile, { errorLog });
      if (outcome.ok) return { text: "reloaded: the new workers took the configuration", data: outcome };
      const reason = outcome.log.filter((l) => /\[(emerg|alert|crit|error)\]|failed/.test(l));
      return {
        text: `not reloaded, the old configuration keeps serving:\n${(reason.length ? reason : outcome.log).join("\n")}`,
        data: outcome,
        code: 1,
      };
    };
  },
};
