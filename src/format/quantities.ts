/**
 * Sizes, durations and clock times for the CLI and the TUI, and the one size and duration grammar both parse. Total: any number in,
 * a string out; a value that is not finite prints as "?".
 */

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"] as const;

/**
 * 1024-based, one decimal from KiB up: `0 B`, `1023 B`, `1.0 KiB`, `12.3 MiB`, `1.5 GiB`. A value
 * that would round to 1024.0 of a unit moves to the next (1048575 → `1.0 MiB`). Fractions of a
 * byte round to the nearest byte; negative values keep their sign.
 */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "?";
  if (n < 0) return `-${formatBytes(-n)}`;
  const bytes = Math.round(n);
  if (bytes < 1024) return `${bytes} B`;
  let value = bytes;
  let unit = 0;
  while (unit < UNITS.length - 1 && value >= 1024) {
    value /= 1024;
    unit++;
  }
  // 1023.95 and up would print as "1024.0".
  if (unit < UNITS.length - 1 && Math.round(value * 10) >= 10240) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`;
}

/**
 * The shortest readable form with about three significant digits: `12 ms` (below a second),
 * `1.23 s` (below a minute), `2m 05s` (below an hour), `1h 02m` (below a day), `3d 04h`.
 * Each form rounds to its last unit, and a value that rounds up to the next form's threshold is
 * shown in that form (59 999 ms → `1m 00s`, not `60.00 s`). Negative values keep their sign.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "?";
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (Math.round(ms) < 1000) return `${Math.round(ms)} ms`;
  if (Math.round(ms / 10) < 6000) return `${(Math.round(ms / 10) / 100).toFixed(2)} s`;
  const seconds = Math.round(ms / 1000);
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${pad2(seconds % 60)}s`;
  const minutes = Math.round(ms / 60_000);
  if (minutes < 24 * 60) return `${Math.floor(minutes / 60)}h ${pad2(minutes % 60)}m`;
  const hours = Math.round(ms / 3_600_000);
  return `${Math.floor(hours / 24)}d ${pad2(hours % 24)}h`;
}

export interface FormatTimeOptions {
  /** UTC instead of the local time zone. Default false. */
  readonly utc?: boolean;
}

/** `HH:MM:SS.mmm` of an epoch time in ms, local time unless `utc`; `??:??:??.???` for an invalid time. */
export function formatTime(ms: number, options: FormatTimeOptions = {}): string {
  const d = new Date(ms);
  if (Number.isNaN(d.getTime())) return "??:??:??.???";
  const utc = options.utc === true;
  const h = utc ? d.getUTCHours() : d.getHours();
  const m = utc ? d.getUTCMinutes() : d.getMinutes();
  const s = utc ? d.getUTCSeconds() : d.getSeconds();
  const milli = utc ? d.getUTCMilliseconds() : d.getMilliseconds();
  return `${pad2(h)}:${pad2(m)}:${pad2(s)}.${String(milli).padStart(3, "0")}`;
}

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

// ---------------------------------------------------------------------------------------------
// Parsing: the one grammar for sizes and durations, used by the CLI's options and the filter's
// `bytes>…` / `dur>…` comparisons alike.
// ---------------------------------------------------------------------------------------------

/**
 * What parsing a size or a duration gives: the exact amount (bytes or milliseconds, fractions
 * kept: each caller decides how to round), or why not:
 * - NOT_A_SIZE / NOT_A_DURATION: the text is not in the grammar;
 * - TOO_LARGE: it is, but the amount is above Number.MAX_SAFE_INTEGER.
 */
export type ParsedQuantity = { readonly value: number } | { readonly problem: "NOT_A_SIZE" | "NOT_A_DURATION" | "TOO_LARGE" };

/** Examples for messages, in the grammar's own spelling. */
export const SIZE_EXAMPLES = "65536, 64k, 1.5KiB, 10m, 1g";
export const DURATION_EXAMPLES = "500ms, 15s, 2m, 1h, 7d";

/** Size units, lower case, in bytes: each power of 1024 spelt `k`, `kb` or `kib` (and m, g, t). */
const SIZE_UNITS: ReadonlyMap<string, number> = new Map([
  ["", 1],
  ["b", 1],
  ...["k", "m", "g", "t"].flatMap((u, i) => [u, `${u}b`, `${u}ib`].map((name) => [name, 1024 ** (i + 1)] as const)),
]);
/** Duration units, lower case, in milliseconds; a plain number is seconds. */
const DURATION_UNITS: ReadonlyMap<string, number> = new Map([
  ["", 1000],
  ["ms", 1],
  ["s", 1000],
  ["m", 60_000],
  ["h", 3_600_000],
  ["d", 86_400_000],
]);

/** A decimal number (digits, optionally a point and more digits) and the letters right after it. */
const QUANTITY = /^(\d+(?:\.\d+)?)([a-z]*)$/i;

/**
 * A size in bytes. Grammar: NUMBER UNIT?, white space around it ignored, none inside.
 * NUMBER is digits with an optional fraction (`10`, `1.5`; not `.5`, `1.`, `1e3`, `-1`).
 * UNIT, any case: `b`; `k`, `kb`, `kib`; `m`, `mb`, `mib`; `g`, `gb`, `gib`; `t`, `tb`, `tib`;
 * all powers of 1024 (`64k` = `64KiB` = 65536). No unit: bytes.
 */
export function parseBytes(text: string): ParsedQuantity {
  return parseQuantity(text, SIZE_UNITS, "NOT_A_SIZE");
}

/**
 * A duration in milliseconds. Grammar: NUMBER UNIT?, as parseBytes, with UNIT one of `ms`, `s`,
 * `m` (minutes), `h`, any case. No unit: seconds (`2` = `2s` = 2000).
 */
export function parseDuration(text: string): ParsedQuantity {
  return parseQuantity(text, DURATION_UNITS, "NOT_A_DURATION");
}

function parseQuantity(text: string, units: ReadonlyMap<string, number>, problem: "NOT_A_SIZE" | "NOT_A_DURATION"): ParsedQuantity {
  const match = QUANTITY.exec(text.trim());
  const unit = match === null ? undefined : units.get(match[2]!.toLowerCase());
  if (match === null || unit === undefined) return { problem };
  const value = Number(match[1]) * unit;
  return value > Number.MAX_SAFE_INTEGER ? { problem: "TOO_LARGE" } : { value };
}
