/** hexDump against `hexdump -C` output for 0, 1, 15, 16, 17 and 33 bytes, with and without offsets. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { execFileSync } from "node:child_process";
import { hexDump } from "../../src/format/index.js";

// 38 bytes mixing text, CR LF, ESC, NUL, DEL and high bytes.
const DATA = Buffer.from("GET / HTTP/1.1\r\nHost: a\x1b[31m\x00\x7f\x80\xff~ end!", "latin1");

const LINE_0 = "00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|";
const LINE_16 = "00000010  48 6f 73 74 3a 20 61 1b  5b 33 31 6d 00 7f 80 ff  |Host: a.[31m....|";

describe("hexDump (hexdump -C layout)", () => {
  // Expected lines are `hexdump -C` output, without its closing offset line.
  it.each([
    [0, []],
    [1, ["00000000  47                                                |G|"]],
    [15, ["00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d     |GET / HTTP/1.1.|"]],
    [16, [LINE_0]],
    [17, [LINE_0, "00000010  48                                                |H|"]],
    [33, [LINE_0, LINE_16, "00000020  7e                                                |~|"]],
  ])("%i bytes", (n, lines) => {
    expect(hexDump(DATA.subarray(0, n))).toEqual(lines);
  });

  it("an absolute offset shifts the column, lines are not realigned (hexdump -C -s)", () => {
    expect(hexDump(DATA.subarray(0, 17), { offset: 0x1234 })).toEqual([
      "00001234  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|",
      "00001244  48                                                |H|",
    ]);
    expect(hexDump(DATA.subarray(0, 33), { offset: 16 })).toEqual([
      "00000010  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|",
      "00000020  48 6f 73 74 3a 20 61 1b  5b 33 31 6d 00 7f 80 ff  |Host: a.[31m....|",
      "00000030  7e                                                |~|",
    ]);
  });

  it("offsets past 4 GiB widen the column", () => {
    expect(hexDump(Buffer.from("A"), { offset: 2 ** 32 })).toEqual(["100000000  41                                                |A|"]);
  });

  it("nonsense options fall back to the defaults", () => {
    const plain = hexDump(DATA);
    for (const offset of [-1, NaN, Infinity, 1.5]) expect(hexDump(DATA, { offset })).toEqual(plain);
    for (const width of [0, -16, NaN, 2.5, 1000]) expect(hexDump(DATA, { width })).toEqual(plain);
  });

  it("other widths keep groups of 8", () => {
    expect(hexDump(DATA.subarray(0, 10), { width: 8 })).toEqual(["00000000  47 45 54 20 2f 20 48 54  |GET / HT|", "00000008  54 50                    |TP|"]);
    expect(hexDump(DATA.subarray(0, 3), { width: 4 })).toEqual(["00000000  47 45 54     |GET|"]);
  });

  it("every line has the same length and no control characters, for any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 2 ** 31 }), (bytes, offset) => {
        const lines = hexDump(bytes, { offset });
        expect(lines.length).toBe(Math.ceil(bytes.length / 16));
        for (const line of lines) {
          expect(line).not.toMatch(/[\x00-\x1f\x7f-\uffff]/);
          expect(line.indexOf("|")).toBe(60);
        }
      }),
    );
  });

  it.runIf(hasHexdump())("matches hexdump -C -v byte for byte on random input", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const out = execFileSync("hexdump", ["-C", "-v"], { input: bytes }).toString("latin1").split("\n");
        // Drop the closing offset line and the empty string after the last newline.
        const expected = bytes.length === 0 ? [] : out.slice(0, -2);
        expect(hexDump(bytes)).toEqual(expected);
      }),
      { numRuns: 30 },
    );
  });
});

function hasHexdump(): boolean {
  try {
    execFileSync("hexdump", ["-C"], { input: Buffer.alloc(0) });
    return true;
  } catch {
    return false;
  }
}
