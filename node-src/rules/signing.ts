/**
 * Signed revisions: with a rules key (the CLI's --rules-key-file, the router's rules_key_file), each
 * revision's pointer carries the HMAC-SHA1 of its text, and a revision read is checked against it.
 * The same key on both sides; the router computes the same HMAC with ngx.hmac_sha1.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { type Pointer, signedText } from "../../lua-src/gray/document.ts";

/** The key this process signs and checks with (one store, one key: the CLI's flags set it). */
let rulesKey: string | undefined;

export function useRulesKey(key: string | undefined): void {
  rulesKey = key;
}

function hmac(key: string, p: Pointer, text: string): string {
  return createHmac("sha1", Buffer.from(key, "utf8")).update(signedText(p, text), "latin1").digest("base64");
}

/** The pointer with its signature, when this process has a key. */
export function signed(p: Pointer, text: string): Pointer {
  return rulesKey === undefined ? p : { ...p, signature: hmac(rulesKey, p, text) };
}

/** Why the revision is not to be trusted under this process's key, or undefined (also when there is no key). */
export function signatureProblem(p: Pointer, text: string): string | undefined {
  if (rulesKey === undefined) return undefined;
  if (p.signature === undefined) return "it is not signed, and --rules-key-file says revisions must be";
  const want = Buffer.from(hmac(rulesKey, p, text));
  const got = Buffer.from(p.signature);
  return want.length === got.length && timingSafeEqual(want, got)
    ? undefined
    : "its signature does not verify under the --rules-key-file key (another key, or forged)";
}
