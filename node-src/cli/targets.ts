/** What the flagging commands take as arguments: IPs, CIDRs and user ids, checked and normalised as the router reads them. */
import { formatAddress, formatCidr, parseAddress, parseCidr } from "../../lua-src/gray/ip.ts";
import { isUserId } from "../../lua-src/gray/rules.ts";
import type { EntryKind } from "../rules/edit.ts";
import { UsageError } from "./command.ts";

/** An entry's subject: an address or a CIDR as nginx prints it, or a user id. */
export interface FlagTarget {
  kind: EntryKind;
  text: string;
}

export function parseTarget(arg: string): FlagTarget {
  if (arg.includes("/")) {
    const cidr = parseCidr(arg);
    if (cidr !== undefined) return { kind: "range", text: formatCidr(cidr) };
  } else {
    const addr = parseAddress(arg);
    if (addr !== undefined) return { kind: "ip", text: formatAddress(addr) };
  }
  throw new UsageError(`not an IP address or CIDR: ${JSON.stringify(arg)}`);
}

export function checkUserId(id: string): string {
  if (!isUserId(id))
    throw new UsageError(`not a user id (1-64 letters, digits or - . _ ~ @ + = :): ${JSON.stringify(id)}`);
  return id;
}

export function userTarget(id: string): FlagTarget {
  return { kind: "user", text: checkUserId(id) };
}
