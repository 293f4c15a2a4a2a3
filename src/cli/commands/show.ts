/** `socksmith show ID [FILE]`: one session's facts, events and bytes (text or --hex). */
import { Command } from "commander";
import { formatEndpoint } from "../../engine/index.js";
import type { ChunkRow, DatagramRow, SessionRow } from "../../store/schema.js";
import type { CaptureReader } from "../../store/reader.js";
import { chunkJson, datagramJson, eventJson, sessionJson } from "../../store/json.js";
import { formatTime, hexDump, printable } from "../../format/index.js";
import { eventLines, sessionFields, sessionTitle, type SessionField } from "../../format/session-fields.js";
import { clean, openReader } from "../capture-file.js";
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
                ...sessionJson(session),
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
 * shows them) one per line in a column, its events, then the conversation.
 */
export function* describeSession(
  reader: Pick<CaptureReader, "events" | "chunks" | "datagrams">,
  s: SessionRow,
  options: { hex: boolean; maxBytes: number },
): Generator<string> {
  yield sessionTitle(s);
  yield* fieldLines(sessionFields(s));

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
  // Consecutive reads in one direction that no addon touched read as one turn of the conversation.
  let turn: ChunkRow[] = [];
  let any = false;
  for (const c of reader.chunks(s.id)) {
    any = true;
    const joins = c.verdict === null && turn.length > 0 && turn[0]!.direction === c.direction;
    if (!joins && turn.length > 0) yield* turnLines(turn, options);
    if (!joins) turn = [];
    if (c.verdict !== null) yield* chunkLines(c, options);
    else turn.push(c);
  }
  if (turn.length > 0) yield* turnLines(turn, options);
  if (!any) yield "  (no bytes)";
}

function* turnLines(turn: readonly ChunkRow[], options: { hex: boolean; maxBytes: number }): Generator<string> {
  if (turn.length === 1) return yield* chunkLines(turn[0]!, options);
  const first = turn[0]!;
  const size = turn.reduce((n, c) => n + c.size, 0);
  const kept = Buffer.concat(turn.map((c) => c.data));
  const last = turn[turn.length - 1]!;
  const sizes = kept.length === size ? `${size} bytes` : `${size} bytes, ${kept.length} kept`;
  yield `${header(first)} #${first.seq}–${last.seq} (${sizes} in ${turn.length} reads)`;
  yield* bytes(kept, options);
}

function header(c: ChunkRow): string {
  return `${c.direction === "up" ? ">>" : "<<"} ${formatTime(c.at)} ${c.direction === "up" ? "client → target" : "target → client"}`;
}

function* chunkLines(c: ChunkRow, options: { hex: boolean; maxBytes: number }): Generator<string> {
  const kept = c.size === c.data.length ? `${c.size} bytes` : `${c.size} bytes, ${c.data.length} kept`;
  const size = c.verdict === "inject" ? `${c.sent?.length ?? 0} bytes` : kept;
  const verdict = c.verdict === null ? "" : c.verdict === "inject" ? ", injected" : `, addon: ${c.verdict}`;
  yield `${header(c)} #${c.seq} (${size}${verdict})`;
  if (c.verdict === "inject") {
    yield* bytes(c.sent ?? Buffer.alloc(0), options);
    return;
  }
  if (c.sent !== null) yield "   as received:";
  yield* bytes(c.data, options);
  if (c.sent !== null) {
    yield "   as sent:";
    yield* bytes(c.sent, options);
  }
}

function* datagramLines(d: DatagramRow, options: { hex: boolean; maxBytes: number }): Generator<string> {
  const arrow = d.direction === "up" ? ">>" : "<<";
  const peer = d.peer_host === null ? "?" : formatEndpoint({ host: d.peer_host, port: d.peer_port ?? 0 });
  const route = d.direction === "up" ? `client ${formatEndpoint({ host: d.from_host, port: d.from_port })} → ${peer}` : `${peer} → client`;
  const dropped = `, dropped: ${d.reason ?? "?"}${d.detail === null ? "" : ` (${d.detail})`}`;
  const verdict = d.verdict === "dropped" ? dropped : d.verdict === "injected" ? ", injected" : "";
  yield clean(`${arrow} ${formatTime(d.at)} ${route} #${d.seq} (${d.size} bytes${verdict})`);
  if (d.sent !== null) yield "   as received:";
  yield* bytes(d.data, options);
  if (d.sent !== null) {
    yield "   as sent:";
    yield* bytes(d.sent, options);
  }
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
