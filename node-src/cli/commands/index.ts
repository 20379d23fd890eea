/** Every `gray` command, in the order `gray --help` lists them. */
import type { Command } from "../command.ts";
import { addUser } from "./add-user.ts";
import { add } from "./add.ts";
import { apply } from "./apply.ts";
import { check } from "./check.ts";
import { diff } from "./diff.ts";
import { explain } from "./explain.ts";
import { exportRules } from "./export.ts";
import { history } from "./history.ts";
import { list } from "./list.ts";
import { migrate } from "./migrate.ts";
import { paths } from "./paths.ts";
import { promote } from "./promote.ts";
import { release } from "./release.ts";
import { reload } from "./reload.ts";
import { removeUser } from "./remove-user.ts";
import { remove } from "./remove.ts";
import { rollback } from "./rollback.ts";
import { status } from "./status.ts";
import { upgrade } from "./upgrade.ts";
import { weight } from "./weight.ts";

export const COMMANDS: readonly Command[] = [
  add,
  remove,
  list,
  addUser,
  removeUser,
  weight,
  history,
  rollback,
  exportRules,
  apply,
  diff,
  migrate,
  explain,
  status,
  release,
  promote,
  upgrade,
  check,
  reload,
  paths,
];
