/**
 * Plain text helpers for the views: terminal-safe strings and fitting text into columns by its
 * width on screen. Pure and total.
 *
 * Security: hosts, user names, SNI, tags, addon messages and file names can come from the wire or
 * from addons. Written raw, an ESC or a C1 byte starts a terminal control sequence, and a bidi
 * override reorders what the reader sees. Every string a view draws goes through `safe` (bytes go
 * through the format module's `printable`), and `safe`'s output never holds such a character.
 */
import { safeText } from "../../format/safe-text.js";

/**
 * `text` with every unsafe character (controls, format characters such as bidi overrides,
 * private use, lone surrogates, unassigned code points, line and paragraph separators) escaped:
 * the one sanitizer the CLI's output and log use too (format/safe-text.ts).
 */
export const safe: (text: string) => string = safeText;

/**
 * Columns a code point takes in a terminal: 0 for combining marks, 2 for East Asian wide and
 * fullwidth characters and emoji, 1 otherwise. An approximation of wcwidth that is right for the
 * ranges people meet; Ink truncates each line again, so an error costs looks, never a wrapped line.
 */
export function charWidth(codePoint: number): number {
  if (codePoint < 0x300) return 1;
  if (COMBINING.test(String.fromCodePoint(codePoint))) return 0;
  for (const [low, high] of WIDE) if (codePoint >= low && codePoint <= high) return 2;
  return 1;
}

const COMBINING = /[\p{Mn}\p{Me}]/u;
const WIDE: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f], // Hangul Jamo
  [0x231a, 0x231b],
  [0x2329, 0x232a],
  [0x23e9, 0x23ec],
  [0x2e80, 0x303e], // CJK radicals … CJK symbols and punctuation
  [0x3041, 0x33ff], // kana … CJK compatibility
  [0x3400, 0x4dbf], // CJK extension A
  [0x4e00, 0x9fff], // CJK unified ideographs
  [0xa000, 0xa4cf], // Yi
  [0xa960, 0xa97f],
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f],
  [0xff00, 0xff60], // fullwidth forms
  [0xffe0, 0xffe6],
  [0x1f300, 0x1f64f], // emoji
  [0x1f900, 0x1f9ff],
  [0x1fa70, 0x1faff],
  [0x20000, 0x3fffd], // CJK extensions B …
];

/** Columns `text` takes on screen (see charWidth). */
export function displayWidth(text: string): number {
  let width = 0;
  for (const c of text) width += charWidth(c.codePointAt(0)!);
  return width;
}

const ELLIPSIS = "…";

/**
 * `text` cut to at most `width` columns, ending with "…" when cut. A cut never leaves half of a
 * `\xNN` escape behind (the whole escape goes). `width` ≤ 0 gives "".
 */
export function truncate(text: string, width: number): string {
  if (width <= 0) return "";
  if (displayWidth(text) <= width) return text;
  let out = "";
  let used = 0;
  for (const c of text) {
    const w = charWidth(c.codePointAt(0)!);
    if (used + w > width - 1) break;
    out += c;
    used += w;
  }
  return out.replace(/\\(x[0-9a-f]?|u(\{[0-9a-f]*)?)?$/, "") + ELLIPSIS;
}

/** `text` cut to `width` columns, then padded with spaces to exactly `width` (on the left with `align: "right"`). */
export function fit(text: string, width: number, align: "left" | "right" = "left"): string {
  const cut = truncate(text, width);
  const pad = " ".repeat(Math.max(0, width - displayWidth(cut)));
  return align === "right" ? pad + cut : cut + pad;
}

/**
 * `text` broken into lines of at most `width` columns (at least one line; "" gives [""]).
 * Breaks fall between characters, not at words: the views wrap payload, where a word break
 * would misstate where the bytes are.
 */
export function wrap(text: string, width: number): string[] {
  const limit = Math.max(1, width);
  // One column per UTF-16 unit (below U+0300, no surrogates): cut by length, no per-character walk.
  // Payload lines can be 64 KiB long; this is what keeps drawing them cheap.
  if (NARROW_ONLY.test(text)) {
    if (text.length <= limit) return [text];
    const lines: string[] = [];
    for (let i = 0; i < text.length; i += limit) lines.push(text.slice(i, i + limit));
    return lines;
  }
  if (displayWidth(text) <= limit) return [text];
  const lines: string[] = [];
  let line = "";
  let used = 0;
  for (const c of text) {
    const w = charWidth(c.codePointAt(0)!);
    if (used + w > limit && line !== "") {
      lines.push(line);
      line = "";
      used = 0;
    }
    line += c;
    used += w;
  }
  lines.push(line);
  return lines;
}

/** Text whose every character is one column wide (charWidth 1 below U+0300). */
const NARROW_ONLY = /^[\u0000-\u02ff]*$/;

/** Tags as `key=value …`, terminal-safe (one wording with `show`). */
export { tagsText } from "../../format/session-fields.js";

/**
 * An addon error with the directories of its source location dropped, so `file:line` stays
 * visible in a narrow status bar: "/home/me/addons/thrower.ts:5:3: boom" → "thrower.ts:5:3: boom".
 */
export function shortLocation(text: string): string {
  return text.replace(/(?:file:\/\/)?(?:[A-Za-z]:)?(?:[^\s:'"()]*[\\/])+([^\\/\s:'"()]+:\d+)/g, "$1");
}
