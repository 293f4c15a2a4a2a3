/**
 * The detail view's content as plain lines, one per screen row: the overview, the events, or the
 * stream (TCP conversation or UDP datagrams) of one session. Lines are already wrapped to the
 * terminal width, so the app can page and clamp `scroll` with `detailLines(...).length`, and the
 * view only slices. The overview and the events are format/session-fields.ts's description,
 * the one `socksmith show` prints; this file only lays them out and colours them.
 *
 * Every string here is terminal-safe: facts go through `safe`, payload through `printable` or
 * `hexDump`.
 */
import { hexDump, looksLikeText, printable } from "../../format/index.js";
import {
  conversationTurns as turns,
  datagramHeading,
  eventLines,
  sessionFields,
  sessionTitle,
  turnHeading,
  type FieldGroup,
  type FieldTone,
  type ReplayComparison,
} from "../../format/session-fields.js";
import type { DetailTab, EventRow, SessionRow, ShownChunk, ShownDatagram, TlsRow, ViewMode } from "../types.js";
import { displayWidth, safe, wrap } from "./text.js";

export type { ReplayComparison } from "../../format/session-fields.js";

export type DetailColour = "red" | "yellow" | "green" | "cyan" | "magenta" | "gray";

/** One screen row of the detail view. */
export interface DetailLine {
  /** Terminal-safe, at most the view's width in columns. */
  readonly text: string;
  readonly color?: DetailColour;
  readonly bold?: boolean;
}

/** What the lines depend on: SessionDetail's props (scroll and height do not matter here). */
export interface DetailContent {
  readonly session: SessionRow;
  readonly events: readonly EventRow[];
  /** The stream's chunks held (all of a small session, a window of a big one; payload may be cut: ShownChunk). */
  readonly chunks: readonly ShownChunk[];
  readonly datagrams: readonly ShownDatagram[];
  readonly tab: DetailTab;
  readonly mode: ViewMode;
  readonly width: number;
  /** For how long an open session has lasted (ms since the epoch); without it the overview says since when. */
  readonly now?: number;
  /** For a replay: how its answer compares with the recorded session's. */
  readonly comparison?: ReplayComparison;
  /** The session's TLS facts (`run --tls`), when it has them: shown in the overview. */
  readonly tls?: TlsRow;
  /** The rows given are a window: rows exist before them (`earlier`) or may after them (`later`); each adds a line. */
  readonly more?: { readonly earlier: boolean; readonly later: boolean };
  /** Tab labels' counts when the rows given are not all there is (e.g. "3", "10000+", "" when unknown). */
  readonly counts?: { readonly events: string; readonly stream: string };
  /** Ignored (the lines do not depend on them), so SessionDetail's props can be passed as they are. */
  readonly scroll?: number;
  readonly height?: number;
}

/** Payload shown per turn or datagram; the rest is counted ("… N more bytes"). Export has it all. */
export const MAX_BLOCK_BYTES = 64 * 1024;
/** Lines of one tab at most; a longer stream ends with a note. Keeps a huge session responsive. */
export const MAX_DETAIL_LINES = 20_000;

const INDENT = "   ";
const FIELD = 12;

/** The lines that say a window's rows are not all there is (one each, above and below them). */
export const WINDOW_MARKERS = {
  earlier: { text: "↑ earlier: scroll up to read them (g: the first)", color: "gray" },
  later: { text: "↓ more: scroll down to read it (G: the last)", color: "gray" },
} as const satisfies Record<string, DetailLine>;

/** All lines of the active tab. */
export function detailLines(content: DetailContent): DetailLine[] {
  const out = new LineBuilder(content.width);
  const windowed = content.tab !== "overview" && content.more !== undefined;
  if (windowed && content.more!.earlier) out.push(WINDOW_MARKERS.earlier.text, { color: WINDOW_MARKERS.earlier.color });
  switch (content.tab) {
    case "overview":
      overview(out, content.session, content.now, content.comparison, content.tls);
      break;
    case "events":
      events(out, content.events, windowed);
      break;
    case "stream":
      if (content.session.command === "udp") datagrams(out, content.datagrams, content.mode, windowed);
      else stream(out, content.chunks, content.mode, windowed);
      break;
    default: {
      const never: never = content.tab;
      return never;
    }
  }
  if (windowed && content.more!.later) out.push(WINDOW_MARKERS.later.text, { color: WINDOW_MARKERS.later.color });
  return out.lines;
}

/** The first line to draw: `scroll` kept within the content, so the last page stays full. */
export function clampScroll(total: number, scroll: number, page: number): number {
  return Math.max(0, Math.min(Math.floor(scroll), total - Math.max(1, page)));
}

class LineBuilder {
  readonly lines: DetailLine[] = [];
  private stopped = false;

  constructor(readonly width: number) {}

  get full(): boolean {
    return this.stopped;
  }

  /** `text` (already safe) wrapped to the width; continuation rows start with `continuation`. */
  push(text: string, style: Omit<DetailLine, "text"> = {}, continuation = ""): void {
    if (this.stopped) return;
    if (this.lines.length >= MAX_DETAIL_LINES) {
      this.stopped = true;
      this.lines.push({ text: "… more than this is not shown here (e exports the whole session)", color: "yellow" });
      return;
    }
    const width = Math.max(1, this.width);
    // Everything pushed is safe already; this guards against a field typed as an enum holding
    // anything else in a crafted capture file (safe leaves safe text as it is).
    const rows = wrap(safe(text), width);
    this.lines.push({ text: rows[0]!, ...style });
    if (rows.length === 1) return;
    const rest = wrap(rows.slice(1).join(""), Math.max(1, width - displayWidth(continuation)));
    for (const row of rest) this.lines.push({ text: continuation + row, ...style });
  }

  /** `name:` in a column, then the value; continuation rows line up under the value. */
  field(name: string, value: string, style: Omit<DetailLine, "text"> = {}): void {
    const label = `${name}:`;
    // A name as long as the column ("served from") still gets a space before its value.
    this.push(`${label.length >= FIELD ? `${label} ` : label.padEnd(FIELD)}${value}`, style, " ".repeat(FIELD));
  }

  blank(): void {
    this.push("");
  }
}

// --- overview and events: format/session-fields.ts words them, as `socksmith show` prints them ---

const TONE_COLOUR = {
  failure: "red",
  attention: "yellow",
  addon: "cyan",
  good: "green",
  muted: "gray",
} as const satisfies Record<FieldTone, DetailColour>;

/** The session's fields in a column, a blank line between groups; detail lines indented under the value. */
function overview(out: LineBuilder, s: SessionRow, now: number | undefined, comparison?: ReplayComparison, tls?: TlsRow): void {
  out.push(sessionTitle(s), { bold: true });
  let group: FieldGroup | undefined;
  const options = { ...(now === undefined ? {} : { now }), ...(comparison === undefined ? {} : { comparison }), ...(tls === undefined ? {} : { tls }) };
  for (const f of sessionFields(s, options)) {
    // The title and the replay group sit together; every later group starts after a blank line.
    if (group !== undefined && f.group !== group) out.blank();
    group = f.group;
    out.field(f.label, f.value, f.tone === undefined ? {} : { color: TONE_COLOUR[f.tone] });
    for (const line of f.detail ?? []) out.push(`${" ".repeat(FIELD)}${line}`, {}, " ".repeat(FIELD + 2));
  }
}

const EVENT_COLOUR: Readonly<Record<string, DetailColour>> = { "hook-error": "red", anomaly: "yellow", capture: "yellow", tag: "cyan", tls: "magenta" };

function events(out: LineBuilder, rows: readonly EventRow[], windowed = false): void {
  if (rows.length === 0 && !windowed) {
    out.push("(no events)", { color: "gray" });
    return;
  }
  for (const e of rows) {
    const colour = EVENT_COLOUR[e.kind];
    const [first = "", ...rest] = eventLines(e);
    out.push(first, colour === undefined ? {} : { color: colour }, INDENT);
    for (const line of rest) out.push(INDENT + line, {}, INDENT);
  }
}

// --- stream -----------------------------------------------------------------------------------

/** All turns of the chunks held (format/session-fields.ts merges them, for show too). */
export function conversationTurns<C extends ShownChunk>(chunks: readonly C[]): C[][] {
  return [...turns(chunks)];
}

const DIRECTION_COLOUR = { up: "cyan", down: "green" } as const satisfies Record<"up" | "down", DetailColour>;

function stream(out: LineBuilder, chunks: readonly ShownChunk[], mode: ViewMode, windowed = false): void {
  if (chunks.length === 0) {
    if (!windowed) out.push("(no bytes)", { color: "gray" });
    return;
  }
  for (const turn of turns(chunks)) {
    if (out.full) return;
    const first = turn[0]!;
    const last = turn[turn.length - 1]!;
    const style = { color: first.direction === "down" ? DIRECTION_COLOUR.down : DIRECTION_COLOUR.up, bold: true } as const;
    const reads = turn.reduce((n, c) => n + (c.reads ?? 1), 0);
    const lastSeq = last.lastSeq ?? last.seq;
    if (reads > 1) {
      const size = turn.reduce((n, c) => n + c.size, 0);
      const kept = turn.reduce((n, c) => n + stored(c), 0);
      // What is held of the turn: its bytes from the start, up to the first row held only in part.
      const cut = turn.findIndex((c) => c.data.length < stored(c));
      const shown = Buffer.concat((cut === -1 ? turn : turn.slice(0, cut + 1)).map((c) => c.data));
      out.push(turnHeading({ first, lastSeq, reads, size, kept }), style, INDENT);
      payload(out, shown, mode, kept);
      continue;
    }
    if (first.verdict === "inject") {
      const sent = first.sent ?? Buffer.alloc(0);
      const sentBytes = first.sentBytes ?? sent.length;
      out.push(turnHeading({ first, lastSeq, reads, size: sentBytes, kept: sentBytes }), style, INDENT);
      payload(out, sent, mode, sentBytes);
      continue;
    }
    out.push(turnHeading({ first, lastSeq, reads, size: first.size, kept: stored(first) }), style, INDENT);
    if (first.sent === null) {
      payload(out, first.data, mode, stored(first));
      continue;
    }
    asReceivedAndSent(out, first, mode);
  }
}

/** The bytes stored of a row's data (its `data` may hold only the first of them). */
function stored(row: { readonly data: Buffer; readonly dataBytes?: number }): number {
  return row.dataBytes ?? row.data.length;
}

function asReceivedAndSent(
  out: LineBuilder,
  row: { readonly data: Buffer; readonly dataBytes?: number; readonly sent: Buffer | null; readonly sentBytes?: number | null },
  mode: ViewMode,
): void {
  const sent = row.sent ?? Buffer.alloc(0);
  const sentBytes = row.sentBytes ?? sent.length;
  out.push(`${INDENT}as received:`, { color: "yellow" });
  payload(out, row.data, mode, stored(row));
  if (sentBytes === 0) {
    out.push(`${INDENT}as sent: nothing`, { color: "yellow" });
    return;
  }
  out.push(`${INDENT}as sent:`, { color: "yellow" });
  payload(out, sent, mode, sentBytes);
}

function datagrams(out: LineBuilder, rows: readonly ShownDatagram[], mode: ViewMode, windowed = false): void {
  if (rows.length === 0) {
    if (!windowed) out.push("(no datagrams)", { color: "gray" });
    return;
  }
  for (const g of rows) {
    if (out.full) return;
    const colour = g.verdict === "dropped" ? "red" : g.direction === "down" ? DIRECTION_COLOUR.down : DIRECTION_COLOUR.up;
    out.push(datagramHeading(g), { color: colour, bold: true }, INDENT);
    if (g.sent === null) payload(out, g.data, mode, stored(g));
    else asReceivedAndSent(out, g, mode);
  }
}

/**
 * Bytes as text or a hex dump (auto: text when it looks like text), indented, at most
 * MAX_BLOCK_BYTES; `total` is how many there are (`data` may be only the first of them).
 */
function payload(out: LineBuilder, data: Buffer, mode: ViewMode, total = data.length): void {
  const shown = data.length > MAX_BLOCK_BYTES ? data.subarray(0, MAX_BLOCK_BYTES) : data;
  const hex = mode === "hex" || (mode === "auto" && !looksLikeText(shown));
  if (hex) {
    const bytesPerLine = hexWidth(out.width - INDENT.length);
    for (const line of hexDump(shown, { width: bytesPerLine })) {
      if (out.full) return;
      out.push(INDENT + line, {}, INDENT);
    }
  } else {
    const lines = printable(shown, { utf8: true }).split("\n");
    // A final line feed ends the last line; it does not start an empty one.
    if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
    for (const line of lines) {
      if (out.full) return;
      out.push(INDENT + line, {}, INDENT);
    }
  }
  if (shown.length < total) out.push(`${INDENT}… ${total - shown.length} more bytes (e exports the whole session)`, { color: "gray" });
}

/** The widest hexdump -C layout (16, 8 or 4 bytes a line) that fits `columns`. */
export function hexWidth(columns: number): number {
  for (const bytes of [16, 8]) if (hexDumpLineLength(bytes) <= columns) return bytes;
  return 4;
}

// hexDump's line: 8-digit offset, 2 spaces, "xx " per byte plus a space between groups of 8, "|text|".
function hexDumpLineLength(bytes: number): number {
  return 8 + 2 + 3 * bytes + Math.floor((bytes - 1) / 8) + 1 + bytes + 1;
}
