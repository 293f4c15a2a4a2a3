/**
 * The CLI's option parsers; sizes and durations against the filter's comparisons: one grammar
 * (format/quantities.ts), so both accept exactly the same texts with the same amounts.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { CliError } from "../../src/cli/errors.js";
import { parseDuration, parseSize } from "../../src/cli/options.js";
import { FilterError, parseFilter } from "../../src/filter/index.js";

/** The filter's amount for `MEASURE>TEXT` (quoted, so any text is one value), or the error's code. */
function filterAmount(measure: "bytes" | "dur", text: string): number | string {
  try {
    const filter = parseFilter(`${measure}>"${text.replace(/[\\"]/g, "\\$&")}"`);
    if (filter.kind !== "compare") throw new Error(`not a comparison: ${JSON.stringify(filter)}`);
    return filter.amount;
  } catch (err) {
    if (err instanceof FilterError) return /is too large/.test(err.message) ? "TOO_LARGE" : "REFUSED";
    throw err;
  }
}

/** The CLI's value, or why not. */
function cliValue(parse: (text: string, option: string) => number, text: string): number | string {
  try {
    return parse(text, "--x");
  } catch (err) {
    if (err instanceof CliError) return /is too (large|long)/.test(err.message) ? "TOO_LARGE" : "REFUSED";
    throw err;
  }
}

/** Texts near the grammar: numbers, fractions, every unit spelling in mixed case, junk. */
const quantityText = fc
  .tuple(
    fc.constantFrom("", " ", "-", "+", "."),
    fc.oneof(fc.nat({ max: 100_000 }).map(String), fc.constantFrom("0", "1.5", "0.001", "99999999999999999", "1.", ".5", "1e3", "")),
    fc.constantFrom(
      ...["", " ", "b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib", "t", "tib"],
      ...["ms", "s", "h", "d", "x", "KiB", "MS", "S", "Gb", "constructor"],
    ),
    fc.constantFrom("", " ", "s", "\t"),
  )
  .map((parts) => parts.join(""));

describe("sizes: parseSize (CLI) and bytes>… (filter)", () => {
  it.each([
    ["65536", 65536],
    ["64k", 65536],
    ["64K", 65536],
    ["64kb", 65536],
    ["64KiB", 65536],
    ["1.5m", 1.5 * 1024 ** 2],
    ["10MiB", 10 * 1024 ** 2],
    ["1g", 1024 ** 3],
    ["2T", 2 * 1024 ** 4],
    ["512b", 512],
    [" 7k ", 7168],
    ["0.5", 0],
    ["1.9", 1],
  ])("%j is %d bytes", (text, bytes) => {
    expect(parseSize(text, "--capture-limit")).toBe(bytes);
  });

  it.each(["", "k", "-1", "1e3", ".5", "1.", "64 k", "10q", "1kk", "constructor"])("%j is refused with an example", (text) => {
    expect(() => parseSize(text, "--capture-limit")).toThrow(/--capture-limit: .* is not a size \(e\.g\. 65536, 64k/);
  });

  it("above 2^53 bytes is too large", () => {
    expect(() => parseSize("9999999999g", "--capture-limit")).toThrow(/is too large/);
  });

  it("both accept exactly the same texts, with the same amount (the CLI rounds down to whole bytes)", () => {
    fc.assert(
      fc.property(quantityText, (text) => {
        const cli = cliValue(parseSize, text);
        const filter = filterAmount("bytes", text);
        expect(cli, text).toBe(typeof filter === "number" ? Math.floor(filter) : filter);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("durations: parseDuration (CLI) and dur>… (filter)", () => {
  it.each([
    ["500ms", 500],
    ["500MS", 500],
    ["15s", 15_000],
    ["15S", 15_000],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["3", 3000],
    ["0.5", 500],
    ["1.0005s", 1001],
    [" 2s ", 2000],
  ])("%j is %d ms", (text, ms) => {
    expect(parseDuration(text, "--idle-timeout")).toBe(ms);
  });

  it.each(["", "s", "2w", "-1s", "1e3", "soon", "2 s"])("%j is refused with an example", (text) => {
    expect(() => parseDuration(text, "--idle-timeout")).toThrow(/--idle-timeout: .* is not a duration \(e\.g\. 500ms, 15s, 2m, 1h, 7d\)/);
  });

  it("longer than a Node timer (2^31 - 1 ms) is too long for an option", () => {
    expect(parseDuration("596h", "--x")).toBe(596 * 3_600_000);
    expect(() => parseDuration("597h", "--x")).toThrow(/--x: "597h" is too long/);
  });

  it("both accept exactly the same texts, with the same amount (the CLI rounds to whole ms and caps at a timer's limit)", () => {
    fc.assert(
      fc.property(quantityText, (text) => {
        const cli = cliValue(parseDuration, text);
        const filter = filterAmount("dur", text);
        const expected = typeof filter === "number" ? (filter > 2 ** 31 - 1 ? "TOO_LARGE" : Math.round(filter)) : filter;
        expect(cli, text).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });
});
