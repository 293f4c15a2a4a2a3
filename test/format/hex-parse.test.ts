/** parseHexDump reverses hexDump for any bytes, offsets and widths, and names the line and column of a mistake. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { formatHexParseError, hexDump, parseHexDump } from "../../src/format/index.js";

const bytesOf = (text: string) => {
  const result = parseHexDump(text);
  if (!result.ok) throw new Error(formatHexParseError(result.error));
  return Buffer.from(result.bytes);
};

describe("parseHexDump", () => {
  it("round-trips hexDump's output for arbitrary bytes, offsets, widths and line ends", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.nat({ max: 2 ** 40 }),
        fc.integer({ min: 1, max: 40 }),
        fc.constantFrom("\n", "\r\n"),
        fc.boolean(),
        (bytes, offset, width, eol, finalEol) => {
          const text = hexDump(bytes, { offset, width }).join(eol) + (finalEol ? eol : "");
          expect(bytesOf(text)).toEqual(Buffer.from(bytes));
        },
      ),
    );
  });

  it("a mistake in any byte gives an error naming its line and column", () => {
    const bad = fc.constantFrom("zz", "4", "123", "0x41", "g0", "é");
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.nat(), bad, (bytes, pick, word) => {
        const lines = hexDump(bytes);
        const at = pick % bytes.length;
        const lineIndex = Math.floor(at / 16);
        const line = lines[lineIndex]!;
        // The byte's two digits: after the 8-digit offset and two spaces, three columns a byte, one more past the 8th.
        const column = 10 + (at % 16) * 3 + (at % 16 >= 8 ? 1 : 0);
        lines[lineIndex] = `${line.slice(0, column)}${word}${line.slice(column + 2)}`;
        const result = parseHexDump(lines.join("\n"));
        expect(result.ok).toBe(false);
        if (result.ok) return;
        expect(result.error.line).toBe(lineIndex + 1);
        expect(result.error.column).toBe(column + 1);
        expect(formatHexParseError(result.error)).toMatch(new RegExp(`^line ${lineIndex + 1}, column ${column + 1}: `));
      }),
    );
  });

  it("bytes can be added or removed anywhere: offsets and the text column are ignored", () => {
    const text = ["00000000  47 45 54 20 41  |GET / HTTP/1.1..|", "00000010  0d 0a 0D 0A", "deadbeef00  ff"].join("\n");
    expect(bytesOf(text)).toEqual(Buffer.from([0x47, 0x45, 0x54, 0x20, 0x41, 0x0d, 0x0a, 0x0d, 0x0a, 0xff]));
  });

  it("bytes without an offset column, tabs, comments and blank lines", () => {
    expect(bytesOf("# a comment | with a bar\n\n  41\t42 43\n   # indented comment\n|ignored|\n44")).toEqual(Buffer.from("ABCD"));
    expect(bytesOf("")).toEqual(Buffer.alloc(0));
  });

  it("explains the usual mistakes", () => {
    const error = (text: string) => {
      const result = parseHexDump(text);
      if (result.ok) throw new Error("parsed");
      return result.error;
    };
    expect(error("41 4")).toEqual({ line: 1, column: 4, message: '"4" is one hex digit: a byte is two (04)' });
    expect(error("41\n4142")).toEqual({ line: 2, column: 1, message: '"4142" is not one byte: write each byte as two hex digits, separated by spaces' });
    expect(error("00000000  41 zz |A.|")).toEqual({ line: 1, column: 14, message: '"zz" is not a hex byte (two hex digits, 00 to ff)' });
    // A short word first is a byte, not an offset: 7 digits are a mistake.
    expect(error("0000000 41").column).toBe(1);
  });
});
