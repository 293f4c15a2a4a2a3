/**
 * `socksmith prune [FILE] (-f EXPR | --older-than DURATION) [--dry-run]`: deletes the sessions that
 * match (both conditions when both are given) and gives their space back (store/prune.ts).
 */
import { Command } from "commander";
import { formatBytes } from "../../format/index.js";
import { DURATION_EXAMPLES, parseDuration } from "../../format/quantities.js";
import { CaptureError } from "../../store/database.js";
import { pruneCapture } from "../../store/prune.js";
import { DEFAULT_CAPTURE, filterOption } from "../capture-file.js";
import { CliError, usageError } from "../errors.js";
import type { Terminal } from "../proxy.js";

interface RawOptions {
  filter?: string;
  olderThan?: string;
  dryRun?: boolean;
}

export function pruneCommand(terminal: Terminal): Command {
  return new Command("prune")
    .description("delete captured sessions (by filter and/or age) and give their space back; not while a proxy writes the file")
    .argument("[file]", "capture file", DEFAULT_CAPTURE)
    .option("-f, --filter <expr>", 'delete the sessions matching a filter, e.g. "host:*.example.com"')
    .option("--older-than <duration>", `delete sessions opened longer ago than this (e.g. ${DURATION_EXAMPLES})`)
    .option("--dry-run", "say how many sessions would be deleted, change nothing")
    .action((file: string, raw: RawOptions) => {
      const filter = filterOption(raw.filter);
      const openedBefore = raw.olderThan === undefined ? undefined : Date.now() - age(raw.olderThan);
      if (filter === undefined && openedBefore === undefined) throw usageError("prune: say which sessions to delete with --filter and/or --older-than");
      try {
        const result = pruneCapture(file, {
          ...(filter === undefined ? {} : { filter }),
          ...(openedBefore === undefined ? {} : { openedBefore }),
          dryRun: raw.dryRun === true,
        });
        const what = `${result.sessions} session${result.sessions === 1 ? "" : "s"}`;
        if (raw.dryRun === true) terminal.out(`${file}: would delete ${what} (of ${formatBytes(result.bytesBefore)} on disk)`);
        else terminal.out(`${file}: deleted ${what}; ${formatBytes(result.bytesBefore)} → ${formatBytes(result.bytesAfter)} on disk`);
      } catch (err) {
        if (err instanceof CaptureError) throw new CliError(err.message, 1);
        throw err;
      }
    });
}

function age(text: string): number {
  const parsed = parseDuration(text);
  if ("value" in parsed) return parsed.value;
  throw usageError(`--older-than: ${JSON.stringify(text)} is not a duration (e.g. ${DURATION_EXAMPLES})`);
}
