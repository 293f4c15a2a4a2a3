/** `socksmith show ID [FILE]`: one session's facts, events and bytes (text or --hex). */
import { Command } from "commander";
import type { ChunkRow, DatagramRow, SessionRow } from "../../store/schema.js";
import type { CaptureReader } from "../../store/reader.js";
import { chunkJson, datagramJson, eventJson, sessionJson } from "../../store/json.js";
import { hexDump, printable } from "../../format/index.js";
import { conversationTurns, datagramHeading, eventLines, sessionFields, sessionTitle, turnHeading, type SessionField } from "../../format/session-fields.js";
import { openReader } from "../capture-file.js";
import { CliError, usageError } from "../errors.js";
import type { Terminal } from "../proxy.js";

interface RawOptions {
  hex?: boolean;
  json?: boolean;
  maxBytes: string;
}

export function showCommand(terminal: Terminal): Command {
  return new Command("show")
    .description("show one captured session: facts, events and its bytes")
    .argument("<id>", "session id (the #N of the log and of `socksmith sessions`)")
    .argument("[file]", "capture file", "socksmith.db")
    .option("--hex", "bytes as a hex dump instead of text")
    .option("--json", "everything as JSON, payload in base64")
    .option("--max-bytes <n>", "show at most this many payload bytes per chunk in text/hex (0 = all)", "4096")
    .action((idText: string, file: string, raw: RawOptions) => {
      if (!/^\d+$/.test(idText)) throw usageError(`show: ${JSON.stringify(idText)} is not a session id`);
      const maxBytes = Number(raw.maxBytes);
      if (!Number.isInteger(maxBytes) || maxBytes < 0) throw usageError(`--max-bytes: ${JSON.stringify(raw.maxBytes)} is not a whole number`);
      const reader = openReader(file);
      try {
        const session = reader.session(Number(idText));
        if (session === undefined) throw new CliError(`${file}: no session ${idText}`, 1);
        if (raw.json === true) {
          terminal.out(
            JSON.stringify(
              {
                ...sessionJson(session, reader.tls(session.id) ?? null),
                events: reader.events(session.id).map(eventJson),
                chunks: [...reader.chunks(session.id)].map(chunkJson),
                datagrams: [...reader.datagrams(session.id)].map(datagramJson),
              },
              null,
              2,
            ),
          );
          return;
        }
        for (const line of describeSession(reader, session, { hex: raw.hex === true, maxBytes: maxBytes === 0 ? Infinity : maxBytes })) terminal.out(line);
      } finally {
        reader.close();
      }
    });
}

/**
 * The text `show` prints: the session's fields (format/session-fields.ts, as the TUI's overview
 * shows them, TLS facts included when the reader has them) one per line in a column, its events,
 * then the conversation (for an intercepted TLS session: the decrypted bytes).
 */
export function* describeSession(
  reader: Pick<CaptureReader, "events" | "chunks" | "datagrams"> & Partial<Pick<CaptureReader, "tls">>,
  s: SessionRow,
  options: { hex: boolean; maxBytes: number },
): Generator<string> {
  yield sessionTitle(s);
  const tls = reader.tls?.(s.id);
  yield* fieldLines(sessionFields(s, tls === undefined ? {} : { tls }));

  const events = reader.events(s.id);
  if (events.length > 0) {
    yield "";
    yield "events:";
    for (const e of events) {
      const [first = "", ...rest] = eventLines(e);
      yield `  ${first}`;
      for (const line of rest) yield `    ${line}`;
    }
  }

  if (s.command === "udp") {
    yield "";
    yield "datagrams:";
    let any = false;
    for (const d of reader.datagrams(s.id)) {
      any = true;
      yield* datagramLines(d, options);
    }
    if (!any) yield "  (none)";
    return;
  }
  yield "";
  yield "stream:";
  let any = false;
  for (const turn of conversationTurns(reader.chunks(s.id))) {
    any = true;
    yield* turnLines(turn, options);
  }
  if (!any) yield "  (no bytes)";
}

/** A turn's heading (format/session-fields.ts, as the TUI's stream tab), then its bytes. */
function* turnLines(turn: readonly ChunkRow[], options: { hex: boolean; maxBytes: number }): Generator<string> {
  const first = turn[0]!;
  const lastSeq = turn[turn.length - 1]!.seq;
  if (turn.length > 1) {
    const kept = Buffer.concat(turn.map((c) => c.data));
    yield turnHeading({ first, lastSeq, reads: turn.length, size: turn.reduce((n, c) => n + c.size, 0), kept: kept.length });
    yield* bytes(kept, options);
    return;
  }
  if (first.verdict === "inject") {
    const sent = first.sent ?? Buffer.alloc(0);
    yield turnHeading({ first, lastSeq, reads: 1, size: sent.length, kept: sent.length });
    yield* bytes(sent, options);
    return;
  }
  yield turnHeading({ first, lastSeq, reads: 1, size: first.size, kept: first.data.length });
  if (first.sent === null) yield* bytes(first.data, options);
  else yield* asReceivedAndSent(first.data, first.sent, options);
}

function* datagramLines(d: DatagramRow, options: { hex: boolean; maxBytes: number }): Generator<string> {
  yield datagramHeading(d);
  if (d.sent === null) yield* bytes(d.data, options);
  else yield* asReceivedAndSent(d.data, d.sent, options);
}

/** What an addon changed: the bytes received, then those sent instead ("nothing" when it dropped them). */
function* asReceivedAndSent(data: Buffer, sent: Buffer, options: { hex: boolean; maxBytes: number }): Generator<string> {
  yield "   as received:";
  yield* bytes(data, options);
  if (sent.length === 0) {
    yield "   as sent: nothing";
    return;
  }
  yield "   as sent:";
  yield* bytes(sent, options);
}

function* bytes(data: Buffer, options: { hex: boolean; maxBytes: number }): Generator<string> {
  const shown = data.length > options.maxBytes ? data.subarray(0, options.maxBytes) : data;
  if (options.hex) {
    for (const line of hexDump(shown)) yield `   ${line}`;
  } else {
    for (const line of printable(shown).split("\n")) yield `   ${line}`;
  }
  if (shown.length < data.length) yield `   … ${data.length - shown.length} more bytes (--max-bytes 0 shows all)`;
}

/** The column values start at; a label as long as it (`served from:`) still gets a space. */
const FIELD = 12;

/**
 * Fields as `label:` in a column and the value, detail lines indented under the value. No colour
 * and no blank lines between groups: the header stays one block, easy to grep.
 */
export function* fieldLines(fields: readonly SessionField[]): Generator<string> {
  for (const f of fields) {
    const label = `${f.label}:`;
    yield `${label.length >= FIELD ? `${label} ` : label.padEnd(FIELD)}${f.value}`;
    for (const line of f.detail ?? []) yield `${" ".repeat(FIELD)}${line}`;
  }
}
