/**
 * The session list: a header and one line per session, columns sized to the terminal. The rows
 * given are the window to draw (the app pages them), oldest at the top.
 *
 * A line never wraps and never exceeds `width`: the target, protocol and tags columns shrink
 * first, then the least useful columns go, and each line is cut to `width` at the end. Without
 * colour the selection still shows (a `>` marker) and so do failures (their status words).
 * The TLS column (`mitm`, `pass`, `fail`: session-text.ts) shows only when a row on screen has one;
 * so does VIA (the first upstream hop, `+N` for more), which goes early when the terminal is narrow.
 * A session holding a paused item (interactive intercept) has `P` beside the selection marker.
 */
import { Box, Text } from "ink";
import { formatBytes, formatTime } from "../../format/index.js";
import type { SessionRow, TlsRow } from "../types.js";
import { durationText, endpointText, protocolText, sessionTone, statusText, targetText, tlsMarker, viaMarker } from "./session-text.js";
import { displayWidth, fit, safe, tagsText, truncate } from "./text.js";

export interface SessionListProps {
  /** Exactly the rows to draw, oldest at the top. */
  readonly rows: readonly SessionRow[];
  readonly selectedId: number | undefined;
  /** Terminal columns. */
  readonly width: number;
  /** Lines for the list, the header included. */
  readonly height: number;
  /** For the live duration of open sessions (ms since the epoch). */
  readonly now: number;
  /** The tls rows of the sessions in `rows` that have one (read for the window in one query). */
  readonly tls?: ReadonlyMap<number, TlsRow>;
  /** Engine ids of the sessions holding a paused item (interactive intercept): their open rows are marked `P`. */
  readonly paused?: ReadonlySet<number>;
}

/** Whether a row holds a paused item: an open row whose engine id is in `paused` (engine ids start again each run). */
export function isPausedRow(row: SessionRow, paused: ReadonlySet<number> | undefined): boolean {
  return paused !== undefined && row.status === "open" && paused.has(row.engine_id);
}

/** The cells of one session's line, terminal-safe, before fitting. */
export interface SessionCells {
  readonly id: string;
  readonly time: string;
  readonly client: string;
  readonly version: string;
  readonly command: string;
  readonly target: string;
  /** The first upstream hop (`+N` for more); "" when direct. */
  readonly via: string;
  readonly status: string;
  readonly up: string;
  readonly down: string;
  readonly duration: string;
  readonly tls: string;
  readonly proto: string;
  readonly tags: string;
}

export type ColumnKey = keyof SessionCells;

/** One session as the list's cells; `tls` is its tls row, when it has one. */
export function sessionColumns(s: SessionRow, now: number, tls?: TlsRow): SessionCells {
  // `safe` again over every cell: a crafted capture file can hold anything in a column typed as an enum.
  const cells: SessionCells = {
    id: String(s.id),
    time: formatTime(s.opened_at),
    client: endpointText(s.client_host, s.client_port),
    version: s.version ?? "-",
    command: s.command ?? "-",
    target: targetText(s),
    via: viaMarker(s),
    status: statusText(s),
    up: formatBytes(s.bytes_up_received),
    down: formatBytes(s.bytes_down_received),
    duration: durationText(s, now),
    tls: tlsMarker(tls),
    proto: protocolText(s),
    tags: tagsText(s.tags),
  };
  return Object.fromEntries(Object.entries(cells).map(([k, v]) => [k, safe(v)])) as unknown as SessionCells;
}

interface ColumnSpec {
  readonly key: ColumnKey;
  readonly header: string;
  readonly align: "left" | "right";
  /** Widest it gets, however long its cells. */
  readonly max: number;
  /** Narrowest it shrinks to before columns are dropped (shrinkable columns only). */
  readonly min?: number;
  /** Columns that go when the terminal is narrow, lowest first (equal ones together); absent: never dropped. */
  readonly drop?: number;
}

const COLUMNS: readonly ColumnSpec[] = [
  { key: "id", header: "ID", align: "right", max: 10, drop: 8 },
  { key: "time", header: "TIME", align: "left", max: 12, drop: 9 },
  { key: "client", header: "CLIENT", align: "left", max: 47, drop: 2 },
  { key: "version", header: "V", align: "left", max: 2, drop: 0 },
  { key: "command", header: "CMD", align: "left", max: 7, drop: 1 },
  { key: "target", header: "TARGET", align: "left", max: 120, min: 30 },
  // How it got there, when not direct: a hint only (the detail has the route), so it goes early.
  { key: "via", header: "VIA", align: "left", max: 24, drop: 1.5 },
  { key: "status", header: "STATUS", align: "left", max: 28 },
  { key: "up", header: "UP", align: "right", max: 10, drop: 6 },
  { key: "down", header: "DOWN", align: "right", max: 10, drop: 6 },
  { key: "duration", header: "DUR", align: "right", max: 9, drop: 5 },
  // Next to PROTO (an intercepted session's protocol is the plaintext's), and goes with it.
  { key: "tls", header: "TLS", align: "left", max: 4, drop: 3 },
  { key: "proto", header: "PROTO", align: "left", max: 40, min: 8, drop: 3 },
  { key: "tags", header: "TAGS", align: "left", max: 200, min: 8, drop: 4 },
];
/** Shrunk in this order before any column is dropped. */
const SHRINK_ORDER: readonly ColumnKey[] = ["tags", "proto", "target"];
/** The narrowest the target gets once every droppable column is gone. */
const TARGET_FLOOR = 12;
const MARKER = 2;
const GAP = 1;

export interface ColumnLayout {
  readonly key: ColumnKey;
  readonly header: string;
  readonly align: "left" | "right";
  readonly width: number;
}

/**
 * Which columns to show and how wide, for these cells in `width` terminal columns (the selection
 * marker included). Columns empty in every row (no tags anywhere) are left out.
 */
export function layoutColumns(cells: readonly SessionCells[], width: number): ColumnLayout[] {
  let columns = COLUMNS.filter((c) => c.drop === undefined || c.key === "id" || cells.some((row) => row[c.key] !== "" && row[c.key] !== "-")).map((c) => ({
    spec: c,
    width: Math.min(c.max, Math.max(displayWidth(c.header), ...cells.map((row) => displayWidth(row[c.key])))),
  }));
  const total = () => MARKER + columns.reduce((n, c) => n + c.width, 0) + GAP * (columns.length - 1);
  const natural = new Map(columns.map((c) => [c.spec.key, c.width]));
  const shrink = (key: ColumnKey, floor: number) => {
    const column = columns.find((c) => c.spec.key === key);
    const excess = total() - width;
    if (column !== undefined && excess > 0) column.width = Math.max(Math.min(column.width, floor), column.width - excess);
  };
  for (const key of SHRINK_ORDER) shrink(key, COLUMNS.find((c) => c.key === key)!.min ?? 1);
  const dropLevels = [...new Set(columns.flatMap((c) => (c.spec.drop === undefined ? [] : [c.spec.drop])))].sort((a, b) => a - b);
  for (const level of dropLevels) {
    if (total() <= width) break;
    columns = columns.filter((c) => c.spec.drop !== level);
  }
  // Still too wide with only the essentials left: the target gives up its last columns.
  shrink("target", TARGET_FLOOR);
  // Dropping may have freed more than it had to: give it back to the shrunk columns, target first.
  for (const key of [...SHRINK_ORDER].reverse()) {
    const column = columns.find((c) => c.spec.key === key);
    if (column === undefined) continue;
    const room = width - total();
    if (room <= 0) break;
    column.width = Math.min(natural.get(key)!, column.width + room);
  }
  return columns.map((c) => ({ key: c.spec.key, header: c.spec.header, align: c.spec.align, width: c.width }));
}

/** The list as plain lines: the header, then one per row; none longer than `width` columns. */
export function sessionListLines(
  rows: readonly SessionRow[],
  selectedId: number | undefined,
  width: number,
  now: number,
  tls?: ReadonlyMap<number, TlsRow>,
  paused?: ReadonlySet<number>,
): { header: string; lines: string[] } {
  const cells = rows.map((s) => sessionColumns(s, now, tls?.get(s.id)));
  const layout = layoutColumns(cells, width);
  const line = (marker: string, values: (c: ColumnLayout) => string) =>
    truncate(
      (
        marker +
        layout
          .map((c, i) => (i === layout.length - 1 && c.align === "left" ? truncate(values(c), c.width) : fit(values(c), c.width, c.align)))
          .join(" ".repeat(GAP))
      ).trimEnd(),
      width,
    );
  return {
    header: line("  ", (c) => c.header),
    lines: cells.map((row, i) => line(`${rows[i]!.id === selectedId ? ">" : " "}${isPausedRow(rows[i]!, paused) ? "P" : " "}`, (c) => row[c.key])),
  };
}

const TONE_COLOUR = { failed: "red", open: "yellow", ok: undefined } as const;

export function SessionList(props: SessionListProps) {
  const width = Math.max(1, props.width);
  const visible = props.rows.slice(0, Math.max(0, props.height - 1));
  const { header, lines } = sessionListLines(visible, props.selectedId, width, props.now, props.tls, props.paused);
  return (
    <Box flexDirection="column" height={Math.max(1, props.height)} width={width}>
      <Text bold wrap="truncate-end">
        {header}
      </Text>
      {visible.map((s, i) => {
        const selected = s.id === props.selectedId;
        const colour = isPausedRow(s, props.paused) ? "magenta" : TONE_COLOUR[sessionTone(s)];
        const text = selected ? fit(lines[i]!, width) : lines[i]!;
        return (
          <Text key={s.id} wrap="truncate-end" inverse={selected} {...(colour === undefined ? {} : { color: colour })}>
            {text}
          </Text>
        );
      })}
    </Box>
  );
}
