/** printable and looksLikeText: escapes, truncation, UTF-8, and that nothing unsafe gets through. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { looksLikeText, printable, TEXT_SCAN_LIMIT } from "../../src/format/index.js";

const b = (text: string) => Buffer.from(text, "latin1");
const utf8 = (text: string) => Buffer.from(text, "utf8");

/** A character a terminal could act on: C0 other than LF, DEL, C1. */
const UNSAFE = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

describe("printable", () => {
  it.each([
    ["", ""],
    ["GET / HTTP/1.1", "GET / HTTP/1.1"],
    ["a\r\nb\n", "a\\r\nb\n"],
    ["\tx", "\\tx"],
    ["\x1b[2J\x1b]0;pwned\x07", "\\x1b[2J\\x1b]0;pwned\\x07"],
    ["\x00\x7f\x80\x9b\xff", "\\x00\\x7f\\x80\\x9b\\xff"],
    ["back\\slash ~", "back\\slash ~"],
  ])("%j → %j", (input, output) => {
    expect(printable(b(input))).toBe(output);
  });

  it("escapes UTF-8 by default, byte by byte", () => {
    expect(printable(utf8("café"))).toBe("caf\\xc3\\xa9");
  });

  describe("utf8: true", () => {
    it.each([
      ["letters, symbols, CJK, emoji", "café ✓ 日本 😀", "café ✓ 日本 😀"],
      ["a C1 control (U+009B is CSI to some terminals)", "\u009b31m", "\\xc2\\x9b31m"],
      ["bidi override and isolate (Trojan Source)", "a\u202eb\u2066c", "a\\xe2\\x80\\xaeb\\xe2\\x81\\xa6c"],
      ["zero-width space, BOM, soft hyphen", "\u200b\ufeff\u00ad", "\\xe2\\x80\\x8b\\xef\\xbb\\xbf\\xc2\\xad"],
      ["line and paragraph separators, private use", "\u2028\u2029\ue000", "\\xe2\\x80\\xa8\\xe2\\x80\\xa9\\xee\\x80\\x80"],
    ])("%s", (_name, input, output) => {
      expect(printable(utf8(input), { utf8: true })).toBe(output);
    });

    it("ill-formed sequences stay escaped: overlong, surrogate, past U+10FFFF, cut short, stray continuation", () => {
      for (const hex of ["c0af", "e08080", "eda080", "f4908080", "e282", "80", "f8"]) {
        const bytes = Buffer.from(hex, "hex");
        expect(printable(bytes, { utf8: true })).toBe(printable(bytes));
      }
      expect(printable(Buffer.from("41e28241", "hex"), { utf8: true })).toBe("A\\xe2\\x82A");
    });
  });

  describe("maxLength", () => {
    it("leaves output that fits alone", () => {
      expect(printable(b("abcde"), { maxLength: 5 })).toBe("abcde");
      expect(printable(b("\x1b"), { maxLength: 4 })).toBe("\\x1b");
    });

    it("cuts with an ellipsis that counts", () => {
      expect(printable(b("abcdef"), { maxLength: 5 })).toBe("abcd…");
      expect(printable(b("abcdef"), { maxLength: 1 })).toBe("…");
      expect(printable(b("abcdef"), { maxLength: 0 })).toBe("");
    });

    it("never cuts inside an escape or a character", () => {
      expect(printable(b("ab\x1bcd"), { maxLength: 5 })).toBe("ab…");
      expect(printable(b("ab\x1bcd"), { maxLength: 6 })).toBe("ab…");
      expect(printable(b("ab\x1bcd"), { maxLength: 7 })).toBe("ab\\x1b…");
      // 😀 is two UTF-16 code units.
      expect(printable(utf8("a😀"), { maxLength: 3, utf8: true })).toBe("a😀");
      expect(printable(utf8("a😀b"), { maxLength: 3, utf8: true })).toBe("a…");
      expect(printable(utf8("a😀bc"), { maxLength: 4, utf8: true })).toBe("a😀…");
    });

    it("does not read a megabyte to print ten characters", () => {
      const big = Buffer.alloc(1 << 20, 0x41);
      expect(printable(big, { maxLength: 10 })).toBe("AAAAAAAAA…");
    });
  });

  it("property: no control characters other than LF, for any bytes and options", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), fc.option(fc.nat({ max: 400 }), { nil: undefined }), (bytes, u, max) => {
        const out = printable(bytes, { utf8: u, maxLength: max });
        expect(out).not.toMatch(UNSAFE);
        if (u) expect(out.replace(/\n/g, "")).not.toMatch(/[\p{C}\u2028\u2029]/u);
        if (max !== undefined) expect(out.length).toBeLessThanOrEqual(max);
        // Without a limit, the bytes can be read back from the text.
        // (A backslash followed by "t", "r" or "x" reads as an escape: those inputs are ambiguous, so left out here.)
        if (max === undefined && !u && !/\\[rtx]/.test(Buffer.from(bytes).toString("latin1"))) {
          expect(unescapeBytes(out)).toEqual(Buffer.from(bytes).toString("latin1"));
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("property: printable ASCII and LF pass through unchanged", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(..." !\"#$%&'()*+,-./0123456789:;<=>?@AZ[]^_`az{|}~\n") }), (text) => {
        expect(printable(b(text))).toBe(text);
      }),
    );
  });
});

/** The inverse of printable for inputs without backslashes' ambiguity: \r \t \xNN back to bytes. */
function unescapeBytes(text: string): string {
  return text.replace(/\\(r|t|x[0-9a-f]{2})/g, (_, e: string) => (e === "r" ? "\r" : e === "t" ? "\t" : String.fromCharCode(parseInt(e.slice(1), 16))));
}

describe("looksLikeText", () => {
  it.each([
    ["empty", Buffer.alloc(0), true],
    ["an HTTP request", b("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), true],
    ["UTF-8 prose", utf8("Grüße aus Köln — 日本語 😀\n"), true],
    ["coloured terminal output", b("\x1b[31merror\x1b[0m: something went wrong here\n"), true],
    ["a NUL", b("hello\x00world"), false],
    ["a TLS ClientHello", Buffer.from("160301020001000200fc0303dd0e5eca", "hex"), false],
    ["latin1, not UTF-8", b("caf\xe9 au lait"), false],
    ["mostly controls", b("\x01\x02\x03abc\x04"), false],
    ["one control in ten", b("\x01abcdefghi"), true],
    ["C1 code points", utf8("\u0085\u0085a"), false],
  ])("%s: %s", (_name, bytes, expected) => {
    expect(looksLikeText(bytes)).toBe(expected);
  });

  it("a UTF-8 sequence cut by the end of the bytes is fine, a broken one is not", () => {
    expect(looksLikeText(utf8("abc😀").subarray(0, 5))).toBe(true);
    expect(looksLikeText(Buffer.concat([utf8("abc"), Buffer.from("f09f41", "hex")]))).toBe(false);
  });

  it("reads only the first TEXT_SCAN_LIMIT bytes", () => {
    const text = Buffer.alloc(TEXT_SCAN_LIMIT, 0x61);
    expect(looksLikeText(Buffer.concat([text, Buffer.alloc(100)]))).toBe(true);
    expect(looksLikeText(Buffer.concat([text.subarray(1), utf8("😀")]))).toBe(true);
  });

  it("never throws", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => void looksLikeText(bytes)));
  });
});
