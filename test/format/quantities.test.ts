/** formatBytes, formatDuration and formatTime: examples and unit boundaries. */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { formatBytes, formatDuration, formatTime } from "../../src/format/index.js";
import { parseBytes, parseDuration } from "../../src/format/quantities.js";

const KiB = 1024;
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [1, "1 B"],
    [999, "999 B"],
    [1023, "1023 B"],
    [1024, "1.0 KiB"],
    [1025, "1.0 KiB"],
    [1536, "1.5 KiB"],
    [10 * KiB - 1, "10.0 KiB"],
    [MiB - 52, "1023.9 KiB"],
    [MiB - 51, "1.0 MiB"], // 1023.95 KiB would print as 1024.0
    [MiB - 1, "1.0 MiB"],
    [MiB, "1.0 MiB"],
    [12.3 * MiB, "12.3 MiB"],
    [GiB - 1, "1.0 GiB"],
    [1.5 * GiB, "1.5 GiB"],
    [1024 * GiB, "1.0 TiB"],
    [1024 ** 5, "1.0 PiB"],
    [1024 ** 6, "1.0 EiB"],
    [1024 ** 7, "1024.0 EiB"],
    [0.4, "0 B"],
    [1023.6, "1.0 KiB"],
    [-2048, "-2.0 KiB"],
    [NaN, "?"],
    [Infinity, "?"],
  ])("%d → %s", (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it("never prints four digits before a decimal point below EiB", () => {
    fc.assert(
      fc.property(fc.double({ min: 1024, max: 1024 ** 6, noNaN: true }), (n) => {
        expect(formatBytes(n)).toMatch(/^\d{1,4}\.\d (KiB|MiB|GiB|TiB|PiB|EiB)$/);
        expect(formatBytes(n)).not.toMatch(/^1024\.0/);
      }),
    );
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0 ms"],
    [12, "12 ms"],
    [12.4, "12 ms"],
    [999, "999 ms"],
    [999.5, "1.00 s"],
    [1000, "1.00 s"],
    [1234, "1.23 s"],
    [59_994, "59.99 s"],
    [59_995, "1m 00s"],
    [60_000, "1m 00s"],
    [125_000, "2m 05s"],
    [125_400, "2m 05s"],
    [3_599_499, "59m 59s"],
    [3_599_500, "1h 00m"],
    [3_720_000, "1h 02m"],
    [86_369_999, "23h 59m"],
    [86_370_000, "1d 00h"],
    [3 * 86_400_000 + 4 * 3_600_000, "3d 04h"],
    [-1500, "-1.50 s"],
    [NaN, "?"],
    [-Infinity, "?"],
  ])("%d ms → %s", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("is never more than 7 characters below 99 days", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 99 * 86_400_000, noNaN: true }), (ms) => {
        expect(formatDuration(ms).length).toBeLessThanOrEqual(7);
      }),
    );
  });
});

describe("formatTime", () => {
  it("prints HH:MM:SS.mmm in UTC", () => {
    expect(formatTime(Date.UTC(2024, 0, 2, 3, 4, 5, 6), { utc: true })).toBe("03:04:05.006");
    expect(formatTime(Date.UTC(2024, 0, 2, 23, 59, 59, 999), { utc: true })).toBe("23:59:59.999");
    expect(formatTime(0, { utc: true })).toBe("00:00:00.000");
  });

  it("prints local time by default", () => {
    const at = Date.UTC(2024, 5, 1, 12, 34, 56, 789);
    const d = new Date(at);
    const pad = (n: number, w = 2) => String(n).padStart(w, "0");
    expect(formatTime(at)).toBe(`${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`);
  });

  it("an invalid time prints as question marks", () => {
    for (const t of [NaN, Infinity, 9e15]) expect(formatTime(t)).toBe("??:??:??.???");
  });
});

describe("parseBytes and parseDuration (the one grammar of the CLI and the filter)", () => {
  it.each([
    ["10", { value: 10 }],
    ["1.5k", { value: 1536 }],
    ["64KiB", { value: 65536 }],
    ["2MB", { value: 2 * 1024 ** 2 }],
    ["0.5b", { value: 0.5 }],
    ["9007199254740991", { value: 2 ** 53 - 1 }],
    ["9007199254740992", { problem: "TOO_LARGE" }],
    ["8192T", { problem: "TOO_LARGE" }],
    ["64 k", { problem: "NOT_A_SIZE" }],
    ["1ms", { problem: "NOT_A_SIZE" }],
    ["hasOwnProperty", { problem: "NOT_A_SIZE" }],
    ["1toString", { problem: "NOT_A_SIZE" }],
  ])("parseBytes(%j)", (text, expected) => {
    expect(parseBytes(text)).toEqual(expected);
  });

  it.each([
    ["2", { value: 2000 }],
    ["1.5s", { value: 1500 }],
    ["0.25ms", { value: 0.25 }],
    ["2M", { value: 120_000 }],
    ["1H", { value: 3_600_000 }],
    ["1k", { problem: "NOT_A_DURATION" }],
    ["7d", { value: 604_800_000 }],
    ["1w", { problem: "NOT_A_DURATION" }],
    ["99999999999999h", { problem: "TOO_LARGE" }],
  ])("parseDuration(%j)", (text, expected) => {
    expect(parseDuration(text)).toEqual(expected);
  });

  it("what formatBytes prints without its space parses back to about the same amount", () => {
    fc.assert(
      fc.property(fc.nat({ max: 2 ** 40 }), (n) => {
        const parsed = parseBytes(formatBytes(n).replace(" ", ""));
        if ("problem" in parsed) throw new Error(parsed.problem);
        expect(Math.abs(parsed.value - n)).toBeLessThanOrEqual(Math.max(0.5, n * 0.05));
      }),
    );
  });
});
