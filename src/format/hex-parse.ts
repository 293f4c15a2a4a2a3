/**
 * The reverse of hexDump (hex-dump.ts): the bytes of a hex dump a person may have edited (the TUI's
 * `e` on a paused binary chunk or datagram).
 *
 * What a line may hold, so that editing is forgiving where it can be and exact where it matters:
 * - the offset column: a first word of 8 or more hex digits is an offset and is ignored, so bytes
 *   can be added or removed anywhere without renumbering the lines below;
 * - the bytes: words of exactly two hex digits (either case), separated by spaces or tabs, any
 *   number to a line;
 * - the text column: everything from the first `|` to the end of the line is ignored (it is
 *   derived from the bytes; editing it changes nothing);
 * - blank lines and lines whose first non-blank character is `#` are ignored; CRLF line ends too.
 *
 * Anything else is a mistake, reported with its 1-based line and column (UTF-16 code units) and
 * never guessed at: the caller keeps the original bytes.
 */

export interface HexParseError {
  /** 1-based line of the mistake. */
  readonly line: number;
  /** 1-based column of the offending word. */
  readonly column: number;
  readonly message: string;
}

export type HexParseResult = { readonly ok: true; readonly bytes: Uint8Array } | { readonly ok: false; readonly error: HexParseError };

/** An offset word: hexDump writes 8 hex digits, more past 4 GiB. */
const OFFSET = /^[0-9a-fA-F]{8,}$/;
const BYTE = /^[0-9a-fA-F]{2}$/;
const WORD = /[^ \t]+/g;

/** The bytes of `text`, a hex dump as hexDump writes it (edited or not), or the first mistake in it. */
export function parseHexDump(text: string): HexParseResult {
  const bytes: number[] = [];
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    let line = lines[index]!;
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (/^[ \t]*#/.test(line)) continue;
    const bar = line.indexOf("|");
    const hex = bar === -1 ? line : line.slice(0, bar);
    let first = true;
    for (const match of hex.matchAll(WORD)) {
      const word = match[0];
      const column = match.index + 1;
      if (first && OFFSET.test(word)) {
        first = false;
        continue;
      }
      first = false;
      if (!BYTE.test(word)) return { ok: false, error: { line: index + 1, column, message: wordProblem(word) } };
      bytes.push(Number.parseInt(word, 16));
    }
  }
  return { ok: true, bytes: Uint8Array.from(bytes) };
}

/** "line 3, column 12: …", for a status line or an editor's error message. */
export function formatHexParseError(error: HexParseError): string {
  return `line ${error.line}, column ${error.column}: ${error.message}`;
}

function wordProblem(word: string): string {
  const shown = JSON.stringify(word.length > 20 ? `${word.slice(0, 20)}…` : word);
  if (/^[0-9a-fA-F]+$/.test(word)) {
    return word.length === 1
      ? `${shown} is one hex digit: a byte is two (0${word})`
      : `${shown} is not one byte: write each byte as two hex digits, separated by spaces`;
  }
  return `${shown} is not a hex byte (two hex digits, 00 to ff)`;
}
