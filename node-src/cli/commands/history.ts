/** `gray history`: the last revisions of the rules document: when, who, what changed. */
import { type Command, noArgs } from "../command.ts";
import { noDocument, readRules } from "../rules-command.ts";

export const history: Command = {
  name: "history",
  usage: "gray history",
  summary: "the last 20 revisions of the rules document, newest first: revision, time, who (user@host), change",
  options: {},
  prepare: (ctx) => {
    noArgs(ctx);
    return async () => {
      const doc = await readRules(ctx);
      if (doc === undefined) return { text: noDocument(ctx), data: { revision: null, history: [] } };
      const entries = doc.history.map((h) => ({
        revision: h.revision,
        at: h.at,
        by: h.by,
        change: h.change,
        current: h.revision === doc.revision,
      }));
      const text = entries
        .map(
          (h) =>
            `${h.revision}  ${new Date(h.at * 1000).toISOString()}  ${h.by}  ${h.change}${h.current ? "  (current)" : ""}`,
        )
        .join("\n");
      return {
        text: text || `revision ${doc.revision} has no history`,
        data: { revision: doc.revision, history: entries },
      };
    };
  },
};
