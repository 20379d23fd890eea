/**
 * `gray migrate`: the 0.1 layout's keys (`gray:ranges`, `gray:weight`, `uid:<id>`) read into the
 * rules document as one revision, for the default canary. The old keys stay, so 0.1 routers keep
 * working beside new ones during a rollout; per-IP seed keys are not moved at all (routers read
 * them while ip_keys = true).
 */
import { readFileSync } from "node:fs";
import { DEFAULT_CANARY } from "../../../lua-src/gray/document.ts";
import { formatCidr } from "../../../lua-src/gray/ip.ts";
import { parseRangeList } from "../../../lua-src/gray/ranges.ts";
import { RANGES_KEY, USER_KEY, WEIGHT_KEY, isUserId, parseWeight } from "../../../lua-src/gray/rules.ts";
import { ensureCanary, flag, setWeight } from "../../rules/edit.ts";
import { type Command, type Context, UsageError, noArgs, stringFlag } from "../command.ts";
import { changeText, runEdit, writeOptions } from "../rules-command.ts";
import { canaryValueOf, valueHelp, valueOption } from "../shared-flags.ts";
import { type AdminStore, StoreError, withStore } from "../store.ts";

interface OldRules {
  ranges: string[];
  skippedRanges: string[];
  /** undefined when no (readable) weight is stored. */
  weight: number | undefined;
  users: { id: string; expires: number }[];
}

/** --users FILE: one id a line; blank lines and # comments skipped; a bad id is bad input. */
function usersFromFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as Error).message}`);
  }
  const ids: string[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    if (!isUserId(line)) throw new UsageError(`${path}:${i + 1}: not a user id: ${JSON.stringify(line)}`);
    ids.push(line);
  });
  return ids;
}

/** User ids with keys, by metadump: memcached itself answers it, no proxy forwards it. */
async function usersFromStore(store: AdminStore, prefix: string): Promise<Map<string, number>> {
  let keys;
  try {
    keys = await store.keys();
  } catch (err) {
    if (!(err instanceof StoreError)) throw err;
    throw new StoreError(
      `${err.message} (user keys are found by lru_crawler metadump, which a proxy does not forward: give the ids with --users FILE)`,
    );
  }
  const found = new Map<string, number>();
  for (const { key, expires } of keys) {
    const id = key.startsWith(prefix + USER_KEY) ? key.slice(prefix.length + USER_KEY.length) : undefined;
    if (id !== undefined && isUserId(id)) found.set(id, expires ?? 0);
  }
  return found;
}

async function readOld(
  store: AdminStore,
  ctx: Context,
  value: string,
  userFile: string[] | undefined,
): Promise<OldRules> {
  const list = parseRangeList((await store.get(ctx.prefix + RANGES_KEY)) ?? "");
  const weightText = await store.get(ctx.prefix + WEIGHT_KEY);
  const parsed = weightText === undefined ? undefined : parseWeight(weightText);
  // The document counts weight in 0.001 % steps: a finer 0.1 weight is rounded to the nearest.
  const weight = parsed === undefined ? undefined : Math.round(parsed * 1000) / 1000;
  const candidates =
    userFile === undefined ? await usersFromStore(store, ctx.prefix) : new Map(userFile.map((id) => [id, 0]));
  const users: OldRules["users"] = [];
  for (const [id, expires] of candidates)
    if ((await store.get(ctx.prefix + USER_KEY + id)) === value) users.push({ id, expires });
  return { ranges: list.cidrs.map(formatCidr), skippedRanges: list.invalid, weight, users };
}

export const migrate: Command = {
  name: "migrate",
  usage: "gray migrate [--users FILE] [--value V]",
  summary:
    "import the 0.1 keys (gray:ranges, gray:weight, uid:<id>) into the rules document for the default canary, as one revision; the old keys stay",
  flags: [
    "  --users FILE           the user ids to look up (one a line); needed through a proxy, which cannot list keys",
    valueHelp + ": a user key holding it is flagged",
    "  --force                replace a document that cannot be read instead of refusing",
  ],
  options: { users: { type: "string" }, ...valueOption, force: writeOptions.force },
  userKeys: true,
  prepare: (ctx) => {
    noArgs(ctx);
    const value = canaryValueOf(ctx);
    const file = stringFlag(ctx, "users");
    const userFile = file === undefined ? undefined : usersFromFile(file);
    // Migrating starts the document: no --init needed (the wait for a router's copy still comes first).
    const initCtx = { ...ctx, values: { ...ctx.values, init: true } };
    return async () => {
      const old = await withStore(ctx.memcached, (store) => readOld(store, ctx, value, userFile));
      const done = await runEdit(initCtx, changeText(ctx, "migrate"), (doc) => {
        let changed = doc.canaries[DEFAULT_CANARY] === undefined;
        ensureCanary(doc, DEFAULT_CANARY);
        for (const cidr of old.ranges) changed = flag(doc, "range", cidr, DEFAULT_CANARY, 0) || changed;
        for (const u of old.users) changed = flag(doc, "user", u.id, DEFAULT_CANARY, u.expires) || changed;
        if (old.weight !== undefined) {
          const w = setWeight(doc, DEFAULT_CANARY, old.weight);
          changed = changed || w.was !== w.now;
        }
        return { changed, result: undefined };
      });
      const lines = [
        `migrated ${old.ranges.length} range(s), ${old.users.length} user(s)${old.weight === undefined ? "" : `, weight ${old.weight} %`} into ${done.written ? "" : "unchanged "}revision ${done.revision}`,
        ...old.skippedRanges.map(
          (r) => `skipped ${JSON.stringify(r)} in ${ctx.prefix}${RANGES_KEY}: not a CIDR (0.1 routers skip it too)`,
        ),
        "the 0.1 keys are left in place; per-IP seed keys stay as they are (routers read them while ip_keys = true)",
      ];
      return {
        text: lines.join("\n"),
        data: { ...old, revision: done.revision, written: done.written },
      };
    };
  },
};
