/**
 * Reading a capture file: paged session lists (newest first), one session with its chunks,
 * datagrams and events, and counts. Used by the CLI's sessions/show/export, the TUI and replay.
 *
 * The reader opens the file read-only, so it can follow a file another process is writing (WAL
 * lets readers and one writer work at once). Payload is iterated, never loaded whole.
 */
import { statSync } from "node:fs";
import type Database from "better-sqlite3";
import { openCapture } from "./database.js";
import type { ChunkRow, DatagramRow, EventRow, RunRow, SessionRow } from "./schema.js";
import { parseFilter, registerFilterFunctions, toSql, type Filter } from "../filter/index.js";

export interface SessionQuery {
  /** A filter expression (DESIGN.md §6) or an already parsed filter; absent lists everything. */
  readonly filter?: string | Filter;
  /** At most this many rows (default 100). */
  readonly limit?: number;
  /** Only sessions with a smaller id (the next page, newest first). */
  readonly before?: number;
  /** Only sessions with a larger id (what is new since the last look). */
  readonly after?: number;
  /** 'newest' (default) or 'oldest' first. */
  readonly order?: "newest" | "oldest";
  /** "Now" for durations of open sessions (default Date.now()). */
  readonly now?: number;
}

export interface CaptureStats {
  readonly sessions: number;
  readonly open: number;
  readonly failed: number;
  readonly denied: number;
  readonly bytes: number;
  /** Size on disk: the file and its WAL. */
  readonly fileBytes: number;
}

export class CaptureReader {
  private readonly db: Database.Database;

  constructor(readonly file: string) {
    this.db = openCapture(file, { readonly: true });
    registerFilterFunctions(this.db);
  }

  /** Sessions, newest first by default, filtered and paged. Throws FilterError on a bad filter. */
  sessions(query: SessionQuery = {}): SessionRow[] {
    const { where, params } = this.where(query);
    const order = query.order === "oldest" ? "ASC" : "DESC";
    const limit = Math.max(0, Math.floor(query.limit ?? 100));
    return this.db.prepare(`SELECT * FROM sessions WHERE ${where} ORDER BY id ${order} LIMIT ${limit}`).all(...params) as SessionRow[];
  }

  /** Every matching session, oldest first, one at a time (for export and replay). */
  *allSessions(query: Omit<SessionQuery, "limit" | "order"> = {}): Generator<SessionRow> {
    const { where, params } = this.where(query);
    yield* this.db.prepare(`SELECT * FROM sessions WHERE ${where} ORDER BY id ASC`).iterate(...params) as IterableIterator<SessionRow>;
  }

  count(query: Omit<SessionQuery, "limit" | "order"> = {}): number {
    const { where, params } = this.where(query);
    return (this.db.prepare(`SELECT count(*) AS n FROM sessions WHERE ${where}`).get(...params) as { n: number }).n;
  }

  session(id: number): SessionRow | undefined {
    return this.db.prepare("SELECT * FROM sessions WHERE id = ?").get(id) as SessionRow | undefined;
  }

  /** The session's chunks in the order they happened. */
  chunks(sessionId: number): IterableIterator<ChunkRow> {
    return this.db.prepare("SELECT * FROM chunks WHERE session_id = ? ORDER BY id").iterate(sessionId) as IterableIterator<ChunkRow>;
  }

  datagrams(sessionId: number): IterableIterator<DatagramRow> {
    return this.db.prepare("SELECT * FROM datagrams WHERE session_id = ? ORDER BY id").iterate(sessionId) as IterableIterator<DatagramRow>;
  }

  events(sessionId: number): EventRow[] {
    return this.db.prepare("SELECT * FROM events WHERE session_id = ? ORDER BY id").all(sessionId) as EventRow[];
  }

  /** Events not tied to a session (capture problems, addon logs from onLoad). */
  runEvents(): EventRow[] {
    return this.db.prepare("SELECT * FROM events WHERE session_id IS NULL ORDER BY id").all() as EventRow[];
  }

  runs(): RunRow[] {
    return this.db.prepare("SELECT * FROM runs ORDER BY id").all() as RunRow[];
  }

  stats(): CaptureStats {
    const row = this.db
      .prepare(
        `SELECT count(*) AS sessions,
           coalesce(sum(status = 'open'), 0) AS open,
           coalesce(sum(status IN ('failed', 'interrupted')), 0) AS failed,
           coalesce(sum(status = 'denied'), 0) AS denied,
           coalesce(sum(bytes_up_received + bytes_down_received), 0) AS bytes
         FROM sessions`,
      )
      .get() as Omit<CaptureStats, "fileBytes">;
    return { ...row, fileBytes: fileSize(this.file) + fileSize(`${this.file}-wal`) };
  }

  close(): void {
    this.db.close();
  }

  private where(query: Omit<SessionQuery, "limit" | "order">): { where: string; params: unknown[] } {
    const parts: string[] = [];
    const params: unknown[] = [];
    if (query.filter !== undefined && query.filter !== "") {
      const filter = typeof query.filter === "string" ? parseFilter(query.filter) : query.filter;
      const sql = toSql(filter, { now: query.now ?? Date.now() });
      parts.push(`(${sql.where})`);
      params.push(...sql.params);
    }
    if (query.before !== undefined) {
      parts.push("id < ?");
      params.push(query.before);
    }
    if (query.after !== undefined) {
      parts.push("id > ?");
      params.push(query.after);
    }
    return { where: parts.length === 0 ? "1" : parts.join(" AND "), params };
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
