/**
 * What the terminal UI reads and shows. The TUI never imports the engine or SQLite
 * (docs/architecture.md, "Data flow and layering"): it gets a `SessionSource` (the store's
 * CaptureReader fits it) and, when attached to a running proxy, a `LiveStatus`. Views are pure
 * functions of these values (docs/architecture.md, "Conventions").
 */
import type { ChunkRow, DatagramRow, EventRow, SessionRow, TlsRow } from "../model/capture-rows.js";
import type { CaptureStats, ChunkMeta, DatagramMeta, EventPageQuery, PageQuery, RowKey, RowPayload, SessionQuery } from "../store/reader.js";

export type {
  ChunkRow,
  DatagramRow,
  EventRow,
  SessionRow,
  TlsRow,
  CaptureStats,
  SessionQuery,
  ChunkMeta,
  DatagramMeta,
  EventPageQuery,
  PageQuery,
  RowKey,
  RowPayload,
};

/**
 * Read access to captured sessions: paged, filtered, newest first. The TUI runs on the relay's
 * thread and SQLite reads are synchronous, so there is no "all chunks of a session" here: a
 * session's rows come in pages of metadata, and payload only for the rows chosen, cut to a cap.
 */
export interface SessionSource {
  readonly file: string;
  sessions(query?: SessionQuery): SessionRow[];
  count(query?: Omit<SessionQuery, "limit" | "order">): number;
  session(id: number): SessionRow | undefined;
  /** The session's TLS facts (`run --tls`); optional so that sources from before TLS interception still fit. */
  tls?(sessionId: number): TlsRow | undefined;
  /** The TLS facts of several sessions in one query (the list's window); sessions without a row are absent. */
  tlsFor?(sessionIds: readonly number[]): Map<number, TlsRow>;
  chunkMeta(sessionId: number, query: PageQuery): ChunkMeta[];
  chunkPayload(ids: readonly number[], cap?: number): Map<number, RowPayload>;
  datagramMeta(sessionId: number, query: PageQuery): DatagramMeta[];
  datagramPayload(ids: readonly number[], cap?: number): Map<number, RowPayload>;
  eventPage(sessionId: number, query: EventPageQuery): EventRow[];
  rowCount(table: "chunks" | "datagrams" | "events", sessionId: number, cap: number): number;
  stats(): CaptureStats;
}

/**
 * A chunk as the detail view holds it. `data`/`sent` may hold only their first bytes: then
 * `dataBytes`/`sentBytes` say how many are stored. A row with `reads` stands for that many
 * consecutive untouched reads of one turn whose bytes are not shown (data empty), up to `lastSeq`.
 */
export type ShownChunk = ChunkRow & {
  readonly dataBytes?: number;
  readonly sentBytes?: number | null;
  readonly reads?: number;
  readonly lastSeq?: number;
};

/** A datagram as the detail view holds it (payload possibly cut, as for ShownChunk). */
export type ShownDatagram = DatagramRow & { readonly dataBytes?: number; readonly sentBytes?: number | null };

/** Something the proxy said, for the status bar, and when (ms since the epoch). */
export interface LiveNote {
  readonly text: string;
  readonly at: number;
}

/** Facts about the running proxy, for the status bar (absent when browsing a file). */
export interface LiveStatus {
  /** Listen addresses, e.g. ["127.0.0.1:1080"]. */
  readonly listen: readonly string[];
  /** Sessions open right now. */
  readonly open: number;
  /** Bytes relayed per second over the last second, both directions. */
  readonly bytesPerSecond: number;
  /** Loaded addons by name. */
  readonly addons: readonly string[];
  /** Hosts whose client rejected the socksmith CA this run (`run --tls`: passed through from then on). */
  readonly tlsDistrusted?: number;
  /** The capture file `--server-replay` answers from, when it does. */
  readonly serverReplay?: string;
  /** The last addon error (hot reload or hook), e.g. "thrower.ts:5:3: boom". Shown for a while, until a key is pressed. */
  readonly lastAddonError?: LiveNote;
  /** The last information line: an addon's ctx.log, an addon loaded or reloaded, a notice. Shown briefly, until a key is pressed. */
  readonly lastInfo?: LiveNote;
  /** The last problem worth showing (capture stopped, …). Stays: it describes the proxy's state. */
  readonly lastError?: LiveNote;
  /** The last warning (a server-replay miss, …). Shown for a while, until a key is pressed. */
  readonly lastWarning?: LiveNote;
}

/** How the stream of a session is shown. */
export type ViewMode = "auto" | "text" | "hex";

/** Tabs of the detail view. */
export type DetailTab = "overview" | "events" | "stream";
