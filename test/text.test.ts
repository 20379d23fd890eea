/** The text helpers shared by the router and the CLI (lua-src/gray/text.ts), as JavaScript. */
import { describe, expect, it } from "vitest";
import { printable } from "../lua-src/gray/text.ts";

describe("printable: a store's words fit for error.log", () => {
  it("keeps printable ASCII as it is", () => {
    expect(printable("SERVER_ERROR out of memory storing object")).toBe("SERVER_ERROR out of memory storing object");
  });
  it("escapes control bytes, DEL, bytes over 0x7f and the backslash itself, so a line cannot be forged", () => {
    expect(printable("a\r\n2026/11/30 [error] forged\x1b[2J\x7f\xff\\")).toBe(
      "a\\x0d\\x0a2026/11/30 [error] forged\\x1b[2J\\x7f\\xff\\x5c",
    );
  });
  it("cuts a long reply, saying how long it was", () => {
    expect(printable("x".repeat(600), 10)).toBe("xxxxxxxxxx... (600 bytes)");
  });
});
