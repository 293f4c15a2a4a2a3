/**
 * `socksmith export [FILE] --format json|pcapng|raw -o OUT`: captured sessions for other tools.
 * - json: one document with every session, its events, chunks and datagrams (payload base64).
 * - pcapng: synthesised TCP/UDP packets per session, for Wireshark/tshark (src/export/pcapng.ts).
 * - raw: a directory with each session's byte stream per direction (`ID-up.bin`, `ID-down.bin`;
 *   UDP: one file per datagram, `ID-SEQ-up.bin`).
 * Exports hold captured payload, so files are created 0600 like the capture itself.
 */
import { closeSync, createWriteStream, mkdirSync, openSync, writeFileSync, writeSync, type WriteStream } from "node:fs";
import { once } from "node:events";
import { join } from "node:path";
import { Command, Option } from "commander";
import { chunkJson, datagramJson, eventJson, sessionJson } from "../../store/json.js";
import type { CaptureReader } from "../../store/reader.js";
import type { Filter } from "../../filter/index.js";
import { pcapngBlocks } from "../../export/pcapng.js";
import { filterOption, openReader } from "../capture-file.js";
import { CliError } from "../errors.js";
import type { Terminal } from "../proxy.js";

interface RawOptions {
  format: "json" | "pcapng" | "raw";
  output: string;
  filter?: string;
  bytes: "sent" | "received";
}

export function exportCommand(terminal: Terminal): Command {
  return new Command("export")
    .description("export captured sessions as JSON, pcapng (Wireshark) or raw byte streams")
    .argument("[file]", "capture file", "socksmith.db")
    .addOption(new Option("--format <format>", "output format").choices(["json", "pcapng", "raw"]).makeOptionMandatory())
    .requiredOption("-o, --output <out>", "output file (- for stdout; a directory for raw)")
    .option("-f, --filter <expr>", "only sessions matching a filter")
    .addOption(
      new Option("--bytes <which>", "for pcapng and raw: bytes as sent on (what each side got) or as received (before addons)")
        .choices(["sent", "received"])
        .default("sent"),
    )
    .action(async (file: string, raw: RawOptions) => {
      const filter = filterOption(raw.filter);
      const reader = openReader(file);
      try {
        const count = reader.count(filter === undefined ? {} : { filter });
        if (raw.format === "raw") {
          if (raw.output === "-") throw new CliError("export --format raw writes a directory; give -o DIR", 2);
          exportRaw(reader, filter, raw.output, raw.bytes);
        } else {
          const chunks = raw.format === "json" ? jsonExport(reader, filter) : pcapng(reader, filter, raw.bytes);
          await writeAll(chunks, raw.output);
        }
        terminal.err(`exported ${count} session${count === 1 ? "" : "s"} as ${raw.format} to ${raw.output === "-" ? "stdout" : raw.output}`);
      } finally {
        reader.close();
      }
    });
}

function* sessionsOf(reader: CaptureReader, filter: Filter | undefined) {
  yield* reader.allSessions(filter === undefined ? {} : { filter });
}

function* jsonExport(reader: CaptureReader, filter: Filter | undefined): Generator<string> {
  yield '{"format":"socksmith-export","version":1,"sessions":[';
  let first = true;
  for (const s of sessionsOf(reader, filter)) {
    const doc = {
      ...sessionJson(s, reader.tls(s.id) ?? null),
      events: reader.events(s.id).map(eventJson),
      chunks: [...reader.chunks(s.id)].map(chunkJson),
      datagrams: [...reader.datagrams(s.id)].map(datagramJson),
    };
    yield `${first ? "" : ","}\n${JSON.stringify(doc)}`;
    first = false;
  }
  yield "\n]}\n";
}

function pcapng(reader: CaptureReader, filter: Filter | undefined, bytes: "sent" | "received"): Iterable<Buffer> {
  const sessions = (function* () {
    for (const session of sessionsOf(reader, filter)) {
      yield { session, chunks: reader.chunks(session.id), datagrams: reader.datagrams(session.id) };
    }
  })();
  return pcapngBlocks(sessions, { bytes });
}

function exportRaw(reader: CaptureReader, filter: Filter | undefined, dir: string, bytes: "sent" | "received"): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pick = (data: Buffer, sent: Buffer | null) => (bytes === "sent" ? (sent ?? data) : data);
  for (const s of sessionsOf(reader, filter)) {
    if (s.command === "udp") {
      for (const d of reader.datagrams(s.id)) writeFileSync(join(dir, `${s.id}-${d.seq}-${d.direction}.bin`), pick(d.data, d.sent), { mode: 0o600 });
      continue;
    }
    // Streamed chunk by chunk: a session can be far larger than memory allows.
    const fds = { up: openSync(join(dir, `${s.id}-up.bin`), "w", 0o600), down: openSync(join(dir, `${s.id}-down.bin`), "w", 0o600) };
    try {
      for (const c of reader.chunks(s.id)) writeSync(fds[c.direction], pick(c.data, c.sent));
    } finally {
      closeSync(fds.up);
      closeSync(fds.down);
    }
  }
}

/** Writes an iterable of pieces to a file or stdout, honouring backpressure. */
async function writeAll(pieces: Iterable<string | Buffer>, output: string): Promise<void> {
  const out: WriteStream | NodeJS.WriteStream = output === "-" ? process.stdout : createWriteStream(output, { mode: 0o600 });
  const failed = new Promise<never>((_, reject) =>
    out.once("error", (err: NodeJS.ErrnoException) => reject(new CliError(`cannot write ${output}: ${err.code ?? err.message}`, 1))),
  );
  failed.catch(() => {});
  for (const piece of pieces) {
    if (!out.write(piece)) await Promise.race([once(out, "drain"), failed]);
  }
  if (out !== process.stdout) {
    (out as WriteStream).end();
    await Promise.race([once(out, "finish"), failed]);
  }
}
