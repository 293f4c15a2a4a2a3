/**
 * `hexdump -C` style lines for the CLI's --hex and the TUI's hex view.
 */

export interface HexDumpOptions {
  /** The offset of bytes[0] in the stream, so the offset column is absolute. Default 0. */
  readonly offset?: number;
  /** Bytes per line, in groups of 8. Default 16 (hexdump -C); other positive integers up to 256 work. */
  readonly width?: number;
}

const DEFAULT_WIDTH = 16;
const MAX_WIDTH = 256;
const GROUP = 8;

/**
 * One string per line, no trailing newline, for example
 *
 *   00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|
 *   00000010  48                                                |H|
 *
 * Offsets are 8 hex digits (more past 4 GiB); a short last line is padded so its text column
 * lines up; the text column shows 0x20–0x7e as is and every other byte as ".", so no line ever
 * holds a control character. Unlike hexdump -C there is no closing offset line and repeated
 * lines are not folded into "*". No bytes, no lines. Nonsense options fall back to defaults.
 */
export function hexDump(bytes: Uint8Array, options: HexDumpOptions = {}): string[] {
  const width = validWidth(options.width);
  const base = options.offset !== undefined && Number.isSafeInteger(options.offset) && options.offset > 0 ? options.offset : 0;
  const lines: string[] = [];
  for (let start = 0; start < bytes.length; start += width) {
    let hex = "";
    let text = "";
    for (let j = 0; j < width; j++) {
      if (j > 0 && j % GROUP === 0) hex += " ";
      const b = bytes[start + j];
      if (b === undefined) {
        hex += "   ";
      } else {
        hex += `${HEX[b]!} `;
        text += b >= 0x20 && b <= 0x7e ? String.fromCharCode(b) : ".";
      }
    }
    lines.push(`${(base + start).toString(16).padStart(8, "0")}  ${hex} |${text}|`);
  }
  return lines;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

function validWidth(width: number | undefined): number {
  return width !== undefined && Number.isInteger(width) && width >= 1 && width <= MAX_WIDTH ? width : DEFAULT_WIDTH;
}
