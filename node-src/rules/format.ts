/**
 * A rules document as memcached holds it (lua-src/gray/document.ts describes the format): its
 * text, cut into chunks of whole lines, and the pointer that names them. Only this side writes
 * the format; the reader is the one the router runs.
 */
import { randomBytes } from "node:crypto";
import { crc32 } from "node:zlib";
import { signed } from "./signing.ts";
import { CHUNK_BYTES, FORMAT, type Pointer, type RulesDocument, formatBuckets } from "../../lua-src/gray/document.ts";

/** History texts (who, what) are free text from the operator's machine: longer than this is cut. */
const MAX_CHANGE_CHARS = 300;
const MAX_BY_CHARS = 100;

/**
 * The text as one printable-ASCII field or tail of a line: the format allows nothing else, and
 * a user name or a change text (an argument) may hold anything. `spaces` false for a field.
 */
export function printable(text: string, spaces: boolean, max: number): string {
  let out = "";
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    out += ch.length === 1 && c >= 32 && c <= 126 && (spaces || c !== 32) ? ch : spaces ? " " : "_";
  }
  out = out.length > max ? out.slice(0, max - 3) + "..." : out;
  return out.length > 0 ? out : "-";
}

const name = (text: string | undefined) => text ?? "-";

/** CRC-32 of the text's bytes (latin1: one byte per char), as the router checks a chunk (ngx.crc32_long). */
export function crc32Text(text: string): number {
  return crc32(Buffer.from(text, "latin1"));
}

/** The lines of a document, each with its "\n": header, stable, canaries, history, entries, end. */
export function documentLines(doc: RulesDocument): string[] {
  const count = (record: Record<string, string>) => Object.keys(record).length;
  const lines = [
    `gray-rules ${FORMAT} ${doc.revision} ${count(doc.ips)} ${count(doc.ranges)} ${count(doc.users)}\n`,
    `stable ${name(doc.stable.upstream)} ${name(doc.stable.location)}\n`,
  ];
  for (const canary of doc.canaryNames) {
    const def = doc.canaries[canary]!;
    lines.push(`canary ${canary} ${formatBuckets(def.buckets)} ${name(def.upstream)} ${name(def.location)}\n`);
  }
  for (const h of doc.history) {
    const pointer = h.pointer === undefined ? "-" : h.pointer.split(" ").join(":");
    const by = printable(h.by, false, MAX_BY_CHARS);
    lines.push(`history ${h.revision} ${h.at} ${by} ${pointer} ${printable(h.change, true, MAX_CHANGE_CHARS)}\n`);
  }
  let entries = 0;
  const add = (kind: string, subjects: Record<string, string>, expires: Record<string, number>) => {
    for (const subject in subjects) {
      lines.push(`${kind} ${subject} ${subjects[subject]} ${expires[subject] ?? 0}\n`);
      entries++;
    }
  };
  add("ip", doc.ips, doc.ipExpires);
  add("range", doc.ranges, doc.rangeExpires);
  add("user", doc.users, doc.userExpires);
  lines.push(`end ${entries}\n`);
  return lines;
}

/** Whole lines, at most `limit` bytes a chunk (lines are ASCII: a char is a byte). */
export function splitChunks(lines: string[], limit = CHUNK_BYTES): string[] {
  const chunks: string[] = [];
  let parts: string[] = [];
  let size = 0;
  for (const line of lines) {
    if (line.length > limit) throw new Error(`a rules line of ${line.length} bytes does not fit in a chunk`);
    if (size + line.length > limit) {
      chunks.push(parts.join(""));
      parts = [];
      size = 0;
    }
    parts.push(line);
    size += line.length;
  }
  if (parts.length > 0) chunks.push(parts.join(""));
  return chunks;
}

/** Two writers in the same millisecond must not share chunk keys. */
export function newNonce(): string {
  return randomBytes(4).toString("hex");
}

export interface Revision {
  pointer: Pointer;
  chunks: string[];
}

/** The chunks and pointer of a document, as written; doc.revision is its revision. */
export function encodeDocument(doc: RulesDocument, nonce = newNonce()): Revision {
  const chunks = splitChunks(documentLines(doc));
  const bytes = chunks.reduce((n, c) => n + c.length, 0);
  const pointer = { revision: doc.revision, nonce, bytes, crcs: chunks.map(crc32Text) };
  return { pointer: signed(pointer, chunks.join("")), chunks };
}
