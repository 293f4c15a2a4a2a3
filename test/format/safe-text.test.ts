/** safeText and safeJson: total, and nothing a terminal acts on survives (a fast-check property). */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { safeJson, safeText } from "../../src/format/safe-text.js";

const TERMINAL_ACTS_ON = /[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2028\u2029\u2066-\u2069\ufeff]/;

describe("safeText", () => {
  it("escapes C0, DEL and C1 as \\xNN, format characters as \\u{…}, keeps the rest", () => {
    expect(safeText("a\x1b]0;t\x07b\x7f\x9b\u202e\u2028é ü 中 😀 \\x41")).toBe("a\\x1b]0;t\\x07b\\x7f\\x9b\\u{202e}\\u{2028}é ü 中 😀 \\x41");
    expect(safeText("line\nbreak\ttab")).toBe("line\\x0abreak\\x09tab");
    expect(safeText("")).toBe("");
  });

  it("never leaves a character a terminal acts on", () => {
    fc.assert(fc.property(fc.string({ unit: "binary" }), (text) => !TERMINAL_ACTS_ON.test(safeText(text))));
  });
});

describe("safeJson", () => {
  it("is JSON.stringify with unsafe characters as \\uXXXX escapes", () => {
    expect(safeJson({ host: "a\x9b\u202e😀" })).toBe('{"host":"a\\u009b\\u202e😀"}');
    expect(safeJson("\x1b")).toBe('"\\u001b"');
    expect(safeJson(undefined)).toBe("null");
  });

  it("parses back to the same value and never leaves a character a terminal acts on", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string({ unit: "binary" }), (value, text) => {
        const out = safeJson({ value, text });
        return !TERMINAL_ACTS_ON.test(out) && JSON.stringify(JSON.parse(out)) === JSON.stringify({ value, text });
      }),
    );
  });
});
