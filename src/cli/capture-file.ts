/** What the capture-reading commands share: the default file, opening it, parsing --filter. */
import { CaptureError } from "../store/database.js";
import { CaptureReader } from "../store/reader.js";
import { FilterError, parseFilter, type Filter } from "../filter/index.js";
import { safeText } from "../format/index.js";
import { CliError, usageError } from "./errors.js";

/** The capture file `run` writes and the other commands read when none is named. */
export const DEFAULT_CAPTURE = "socksmith.db";

export function openReader(file: string | undefined): CaptureReader {
  const path = file ?? DEFAULT_CAPTURE;
  try {
    return new CaptureReader(path);
  } catch (err) {
    if (err instanceof CaptureError) throw new CliError(err.message, 1);
    throw err;
  }
}

/** A --filter value, parsed; a bad one is a usage error that points at the column. */
export function filterOption(text: string | undefined, option = "--filter"): Filter | undefined {
  if (text === undefined || text.trim() === "") return undefined;
  try {
    return parseFilter(text);
  } catch (err) {
    // The message, then the filter with a caret under the column (indented alike, so they line up).
    if (err instanceof FilterError) throw usageError(`${option}: ${err.message}\n  ${text}\n  ${" ".repeat(err.column - 1)}^`);
    throw err;
  }
}

/**
 * Text from the wire or an addon (user names, hosts, SNI, tags, messages) made safe to print:
 * controls as `\xNN`, bidi and other format characters as `\u{XXXX}` (format/safe-text.ts).
 */
export const clean: (text: string) => string = safeText;
