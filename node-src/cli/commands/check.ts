/**
 * `gray check CONF`: before a reload, what `nginx -t` cannot tell — the router's options as
 * nginx itself evaluates them, and the drop-in's parts around configure() (../../conf-check.ts).
 */
import { existsSync } from "node:fs";
import { type Finding, checkConf } from "../../conf-check.ts";
import { type Command, UsageError, stringFlag } from "../command.ts";

const line = (f: Finding) => `${f.level}: ${f.where ? `${f.where}: ` : ""}${f.message}`;

export const check: Command = {
  name: "check",
  usage: "gray check CONF [--nginx BIN] [--nginx-prefix DIR]",
  summary:
    "check an nginx conf before a reload: nginx -t, configure()'s options run in nginx's own LuaJIT, the drop-in's parts (exit 1 on an error)",
  flags: [
    "  --nginx BIN            the nginx (or openresty) binary that will run the conf (default nginx)",
    "  --nginx-prefix DIR     nginx's prefix (-p), against which relative paths in the conf resolve",
  ],
  options: { nginx: { type: "string" }, "nginx-prefix": { type: "string" } },
  prepare: (ctx) => {
    if (ctx.args.length !== 1) throw new UsageError("give exactly one nginx conf file");
    const conf = ctx.args[0]!;
    if (!existsSync(conf)) throw new UsageError(`no such file: ${conf}`);
    const nginx = stringFlag(ctx, "nginx", "nginx");
    const prefix = stringFlag(ctx, "nginx-prefix");
    return () => {
      const { findings, options } = checkConf(conf, nginx, prefix);
      const errors = findings.filter((f) => f.level === "error").length;
      const verdict = errors > 0 ? `${errors} error(s): nginx would refuse this conf or route wrongly` : `ok: ${conf}`;
      return Promise.resolve({
        text: [...findings.map(line), verdict].join("\n"),
        data: { ok: errors === 0, findings, options },
        code: errors > 0 ? 1 : 0,
      });
    };
  },
};
