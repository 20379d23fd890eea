/** `gray upgrade`: nginx's binary hot upgrade with a health check and a way back (../upgrade.ts). */
import { type Command, ROLLED_BACK, noArgs, stringFlag } from "../command.ts";
import { httpUrl, pidFileOf, pidFileOption } from "../shared-flags.ts";
import { upgrade as runUpgrade } from "../upgrade.ts";

export const upgrade: Command = {
  name: "upgrade",
  usage: "gray upgrade --pid-file PATH [--health-url URL]",
  summary:
    "nginx binary hot upgrade: USR2, WINCH, health check, QUIT the old master; a failed check rolls back (HUP old, QUIT new; exit 3)",
  flags: [
    "  --pid-file PATH        nginx's pid file (its pid directive); the new binary is whatever is on disk at the master's path",
    "  --health-url URL       must answer 2xx 5 times once the new master serves alone, else the old one comes back",
  ],
  options: { ...pidFileOption, "health-url": { type: "string" } },
  prepare: (ctx) => {
    noArgs(ctx);
    const pidFile = pidFileOf(ctx);
    const rawUrl = stringFlag(ctx, "health-url");
    const healthUrl = rawUrl === undefined ? undefined : httpUrl("health-url", rawUrl);
    return async () => {
      const outcome = await runUpgrade(pidFile, healthUrl, (line) => ctx.json || process.stdout.write(line + "\n"));
      if (outcome.event === "upgraded")
        return { text: `upgraded: nginx master ${outcome.newPid} (was ${outcome.oldPid})`, data: outcome };
      return {
        text: `rolled back to nginx master ${outcome.oldPid}: ${outcome.problem}`,
        data: outcome,
        code: ROLLED_BACK,
      };
    };
  },
};
