/** `gray paths`: where the installed package keeps the Lua and the example confs, for lua_package_path. */
import { EXAMPLES_DIR, LUA_DIR } from "../../paths.ts";
import { type Command, noArgs } from "../command.ts";

export const paths: Command = {
  name: "paths",
  usage: "gray paths",
  summary: "print where the router's Lua and the example confs are, and the lua_package_path line to use",
  options: {},
  prepare: (ctx) => {
    noArgs(ctx);
    const packagePath = `lua_package_path "${LUA_DIR}/?.lua;;";`;
    return () =>
      Promise.resolve({
        text: [`lua       ${LUA_DIR}`, `examples  ${EXAMPLES_DIR}`, "", packagePath].join("\n"),
        data: { lua: LUA_DIR, examples: EXAMPLES_DIR, lua_package_path: packagePath },
      });
  },
};
