/** What the capture-reading commands share: the default file, opening it, parsing --filter. */
import { statSync } from "node:fs";
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

/**
 * The loud warning `run` prints when the capture file it appends to can be read or written by
 * others (mode & 0o077: group or world bits), or undefined. A capture holds every byte relayed
 * (cookies, tokens, user names); files socksmith creates are 0600, so this is a file made or
 * changed by hand. Not on Windows (no such mode bits) and not for a file that does not exist yet.
 */
export function sharedCaptureWarning(file: string): string | undefined {
  if (process.platform === "win32") return undefined;
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    return undefined; // missing: it is created 0600; unreadable: opening it reports why
  }
  if ((mode & 0o077) === 0) return undefined;
  const octal = (mode & 0o777).toString(8).padStart(4, "0");
  return `WARNING: capture file ${file} is accessible to other users (mode ${octal}) and will hold every byte relayed; chmod 600 ${file}`;
}

/** A CaptureError's message for a command other than `run` (the caller adds its own options). */
export function captureProblem(err: CaptureError): string {
  return err.message;
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
