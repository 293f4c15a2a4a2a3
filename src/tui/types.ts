/**
 * What the terminal UI reads and shows. The TUI never imports the engine or SQLite (DESIGN.md §2):
 * it gets a `SessionSource` (the store's CaptureReader fits it) and, when attached to a running
 * proxy, a `LiveStatus`. Views are pure functions of these values (STYLE.md 12).
 */
import type { ChunkRow, DatagramRow, EventRow, SessionRow } from "../store/schema.js";
import type { CaptureStats, SessionQuery } from "../store/reader.js";

export type { ChunkRow, DatagramRow, EventRow, SessionRow, CaptureStats, SessionQuery };

/** Read access to captured sessions: paged, filtered, newest first. */
export interface SessionSource {
  readonly file: string;
  sessions(query?: SessionQuery): SessionRow[];
  count(query?: Omit<SessionQuery, "limit" | "order">): number;
  session(id: number): SessionRow | undefined;
  chunks(sessionId: number): IterableIterator<ChunkRow>;
  datagrams(sessionId: number): IterableIterator<DatagramRow>;
  events(sessionId: number): EventRow[];
  stats(): CaptureStats;
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
  /** The capture file `--server-replay` answers from, when it does. */
  readonly serverReplay?: string;
  /** The last addon error (hot reload or hook), e.g. "thrower.ts:5:3: boom". */
  readonly lastAddonError?: string;
  /** The last problem worth showing (capture stopped, …). */
  readonly lastError?: string;
  /** The last warning (a server-replay miss, …). */
  readonly lastWarning?: string;
}

/** How the stream of a session is shown. */
export type ViewMode = "auto" | "text" | "hex";

/** Tabs of the detail view. */
export type DetailTab = "overview" | "events" | "stream";
