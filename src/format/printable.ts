/**
 * Captured bytes as text that is safe to write to a terminal.
 *
 * Security: captured bytes come from whoever is on the other end of a session. Written raw, an
 * ESC or C1 byte starts a terminal control sequence (retitle the window, rewrite the screen,
 * in some terminals answer back as typed input). printable's output never contains a character
 * below U+0020 other than "\n", nor U+007F–U+009F; with `utf8` it also escapes Unicode format
 * characters such as the bidi overrides (CVE-2021-42574, "Trojan Source").
 */

export interface PrintableOptions {
  /**
   * The most characters (UTF-16 code units) to return. Longer output is cut before an escape,
   * never inside one, and ends with "…" (which counts). Default: no limit.
   */
  readonly maxLength?: number;
  /**
   * Show well-formed UTF-8 as the characters it encodes, except controls, format characters,
   * unassigned and private-use code points (Unicode category C) and U+2028/U+2029, which stay
   * escaped byte by byte.
   * Default false: every byte outside printable ASCII is `\xNN`.
   */
  readonly utf8?: boolean;
}

const ELLIPSIS = "…";
// Category C (controls, format, surrogates, private use, unassigned) and the line and paragraph separators.
const UNSAFE = /[\p{C}\p{Zl}\p{Zp}]/u;
const ESCAPES = Array.from({ length: 256 }, (_, b) => {
  if (b === 0x0a) return "\n";
  if (b === 0x0d) return "\\r";
  if (b === 0x09) return "\\t";
  if (b >= 0x20 && b <= 0x7e) return String.fromCharCode(b);
  return `\\x${b.toString(16).padStart(2, "0")}`;
});

/**
 * Printable ASCII as is (a backslash too: `\x41` in the output may be four typed characters), a
 * line feed as a line break, CR and TAB as `\r` and `\t`, every other byte as `\xNN`.
 */
export function printable(bytes: Uint8Array, options: PrintableOptions = {}): string {
  const max = options.maxLength === undefined || Number.isNaN(options.maxLength) ? Infinity : Math.max(0, Math.floor(options.maxLength));
  const pieces: string[] = [];
  let length = 0;
  for (let at = 0; at < bytes.length; ) {
    let piece = ESCAPES[bytes[at]!]!;
    let used = 1;
    if (options.utf8 === true && bytes[at]! >= 0x80) {
      const decoded = decodeUtf8(bytes, at);
      if (decoded?.complete) {
        const char = String.fromCodePoint(decoded.codePoint);
        if (!UNSAFE.test(char)) {
          piece = char;
          used = decoded.size;
        }
      }
    }
    if (length + piece.length > max) {
      // Make room for the ellipsis by dropping whole pieces (an escape is one piece).
      while (pieces.length > 0 && length + ELLIPSIS.length > max) length -= pieces.pop()!.length;
      return length + ELLIPSIS.length <= max ? pieces.join("") + ELLIPSIS : pieces.join("");
    }
    pieces.push(piece);
    length += piece.length;
    at += used;
  }
  return pieces.join("");
}

/** looksLikeText reads at most this many bytes. */
export const TEXT_SCAN_LIMIT = 8 * 1024;

/**
 * A guess for an "auto" view: true when the bytes (the first TEXT_SCAN_LIMIT of them) are
 * well-formed UTF-8 (a sequence cut by the end of the scan is fine), hold no NUL, and at most
 * one character in ten is a control other than TAB, LF, CR, FF (ESC counts: coloured terminal
 * output is still mostly text). True for no bytes.
 */
export function looksLikeText(bytes: Uint8Array): boolean {
  const end = Math.min(bytes.length, TEXT_SCAN_LIMIT);
  let chars = 0;
  let controls = 0;
  for (let at = 0; at < end; ) {
    const b = bytes[at]!;
    chars++;
    if (b < 0x80) {
      if (b === 0) return false;
      if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c) || b === 0x7f) controls++;
      at++;
      continue;
    }
    const decoded = decodeUtf8(bytes.subarray(0, end), at);
    if (decoded === undefined) return false;
    if (!decoded.complete) break;
    if (decoded.codePoint <= 0x9f) controls++;
    at += decoded.size;
  }
  return controls * 10 <= chars;
}

/**
 * The UTF-8 sequence starting at `at` (RFC 3629 §4: no overlong forms, no surrogates, nothing
 * past U+10FFFF): undefined when ill-formed, `complete: false` when well-formed so far but cut
 * by the end of `bytes`.
 */
function decodeUtf8(bytes: Uint8Array, at: number): { codePoint: number; size: number; complete: boolean } | undefined {
  const lead = bytes[at]!;
  let size: number;
  let codePoint: number;
  let low = 0x80;
  let high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    size = 2;
    codePoint = lead & 0x1f;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    size = 3;
    codePoint = lead & 0x0f;
    if (lead === 0xe0) low = 0xa0; // overlong
    if (lead === 0xed) high = 0x9f; // surrogates
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    size = 4;
    codePoint = lead & 0x07;
    if (lead === 0xf0) low = 0x90; // overlong
    if (lead === 0xf4) high = 0x8f; // past U+10FFFF
  } else {
    return undefined;
  }
  for (let i = 1; i < size; i++) {
    const b = bytes[at + i];
    if (b === undefined) return { codePoint: 0, size, complete: false };
    if (b < (i === 1 ? low : 0x80) || b > (i === 1 ? high : 0xbf)) return undefined;
    codePoint = (codePoint << 6) | (b & 0x3f);
  }
  return { codePoint, size, complete: true };
}
