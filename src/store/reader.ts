/**
 * Reading a capture file: paged session lists (newest first), one session with its chunks,
 * datagrams and events, and counts. Used by the CLI's sessions/show/export, the TUI and replay.
 *
 * The reader opens the file read-only, so it can follow a file another process is writing (WAL
 * lets readers and one writer work at once). Payload is iterated, never loaded whole. Large
 * payloads live in the payload file (payload-file.ts): every method here returns rows with their
 * bytes in place, whichever way they were stored.
 *
 * Paged reads (for the TUI, which runs on the relay's thread: better-sqlite3 is synchronous, so
 * every read there must be bounded): `chunkMeta`/`datagramMeta` give a page of rows without their
 * payload, in (seq, id) order from a key, by an indexed range (chunks_session, datagrams_session
 * on `datagram_rows`, datagram_batches_session; a page of datagrams merges the two, and reads
 * batches of at most BATCH_ROWS datagrams and BATCH_BYTES of payload, datagram-batches.ts);
 * `chunkPayload`/`datagramPayload` then fetch the payload of the rows chosen, cut to `cap` bytes.
 * SQLite reads a whole blob even for substr(), so callers bound a page by the rows' full lengths
 * (`dataBytes` + `sentBytes`, which cost nothing to read), not by the bytes returned (a row in the
 * payload file reads only its prefix, but callers need not know which rows those are).
 */
import type Database from "better-sqlite3";
import { batchPayloads, DecodedBatch, type StoredBatch } from "./datagram-batches.js";
import { openCapture } from "./database.js";
import { captureSize, type ExternalPayload, PayloadReader, swapFileOf } from "./payload-file.js";
import type { ChunkRow, DatagramRow, EventRow, RunRow, SessionRow, TlsRow } from "./schema.js";
import { parseFilter, registerFilterFunctions, toSql, type Filter } from "../filter/index.js";

export interface SessionQuery {
  /** A filter expression (the language of filter/parse.ts) or an already parsed filter; absent lists everything. */
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

/** A position in a session's chunks or datagrams: (seq, id) order, the order of their index. */
export interface RowKey {
  readonly seq: number;
  readonly id: number;
}

/** Which page of rows: after a key (ascending; the first page without it) or before one (descending). */
export interface PageQuery {
  readonly after?: RowKey;
  readonly before?: RowKey;
  /** At most this many rows (clamped to 1…10,000). */
  readonly limit: number;
}

/** A chunk without its payload: what a page is chosen and a TUI turn is built from. */
export interface ChunkMeta {
  readonly id: number;
  readonly session_id: number;
  readonly seq: number;
  readonly at: number;
  readonly direction: "up" | "down";
  readonly size: number;
  readonly verdict: ChunkRow["verdict"];
  /** length(data): the bytes stored (fewer than `size` when the capture limit cut it). */
  readonly dataBytes: number;
  /** length(sent), null when no hook changed the chunk. */
  readonly sentBytes: number | null;
}

/** A datagram without its payload. */
export type DatagramMeta = Omit<DatagramRow, "data" | "sent"> & { readonly dataBytes: number; readonly sentBytes: number | null };

/** Payload of one row, each side cut to the cap asked for. */
export interface RowPayload {
  readonly data: Buffer;
  readonly sent: Buffer | null;
}

/** Events of one session by id; messages cut to `cap` characters (with "…"). */
export interface EventPageQuery {
  readonly afterId?: number;
  readonly beforeId?: number;
  readonly limit: number;
  readonly cap?: number;
}

export interface CaptureStats {
  readonly sessions: number;
  readonly open: number;
  readonly failed: number;
  readonly denied: number;
  readonly bytes: number;
  /** Size on disk: the file, its WAL and its payload file. */
  readonly fileBytes: number;
}

/** Where a stored row says its payload is: inline (`payload_at` null) or in the payload file. */
interface StoredPayload {
  readonly data: Buffer | string | null;
  readonly sent: Buffer | string | null;
  readonly payload_at: number | null;
  readonly payload_data: number | null;
  readonly payload_sent: number | null;
}

/** Rows of `datagram_rows` read per step while iterating a session's datagrams. */
const ROWS_PER_READ = 256;
/** The columns of a batch row the reader reads (its payload only when bytes are asked for). */
const BATCH_READ = "first_id, session_id, count, min_seq, at, shapes, items";

/** (seq, id) order: negative when `a` comes first. */
function compareKeys(a: RowKey, b: RowKey): number {
  return a.seq !== b.seq ? a.seq - b.seq : a.id - b.id;
}

export class CaptureReader {
  private readonly db: Database.Database;
  private readonly external: PayloadReader;
  private lastBatch: DecodedBatch | undefined;

  constructor(readonly file: string) {
    this.db = openCapture(file, { readonly: true });
    this.external = new PayloadReader(file, swapFileOf(this.db, file));
    registerFilterFunctions(this.db, (at, dataBytes, sentBytes) => this.external.read({ at, dataBytes, sentBytes }), batchPayloads);
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

  /** The session's TLS facts (`run --tls`, a tunnel that began with a ClientHello); undefined for any other session. */
  tls(sessionId: number): TlsRow | undefined {
    return this.db.prepare("SELECT * FROM tls WHERE session_id = ?").get(sessionId) as TlsRow | undefined;
  }

  /**
   * The TLS facts of these sessions in one query (the TUI's list reads its visible window so, not a
   * row at a time); sessions without a tls row are absent from the map.
   */
  tlsFor(sessionIds: readonly number[]): Map<number, TlsRow> {
    const out = new Map<number, TlsRow>();
    if (sessionIds.length === 0) return out;
    const rows = this.db.prepare("SELECT * FROM tls WHERE session_id IN (SELECT value FROM json_each(?))").all(JSON.stringify(sessionIds)) as TlsRow[];
    for (const row of rows) out.set(row.session_id, row);
    return out;
  }

  /** The session's chunks in the order they happened. */
  chunks(sessionId: number): IterableIterator<ChunkRow> {
    return this.rows<ChunkRow>("chunks", sessionId);
  }

  /** The session's datagrams in the order they were recorded (rows and batches, by id). */
  datagrams(sessionId: number): IterableIterator<DatagramRow> {
    return this.datagramRows(sessionId);
  }

  private *datagramRows(sessionId: number): Generator<DatagramRow, void, undefined> {
    const rows = this.db.prepare(`SELECT * FROM datagram_rows WHERE session_id = ? AND id > ? ORDER BY id LIMIT ${ROWS_PER_READ}`);
    const batches = this.db.prepare(`SELECT ${BATCH_READ}, payload FROM datagram_batches WHERE session_id = ? AND max_seq > ? ORDER BY max_seq LIMIT 1`);
    let page: StoredPayload[] = [];
    let next = 0;
    let lastRowId = 0;
    let rowsDone = false;
    let batch: DecodedBatch | undefined;
    let item = 0;
    let lastSeq = -Number.MAX_SAFE_INTEGER;
    let batchesDone = false;
    for (;;) {
      if (next === page.length && !rowsDone) {
        page = rows.all(sessionId, lastRowId) as StoredPayload[];
        next = 0;
        rowsDone = page.length < ROWS_PER_READ;
      }
      if ((batch === undefined || item === batch.count) && !batchesDone) {
        const row = batches.get(sessionId, lastSeq) as StoredBatch | undefined;
        batch = row === undefined ? undefined : DecodedBatch.of(row, this.file);
        item = 0;
        if (batch === undefined) batchesDone = true;
        else lastSeq = batch.seq(batch.count - 1);
      }
      const row = next < page.length ? (page[next] as StoredPayload & { id: number }) : undefined;
      const batchId = batch !== undefined && item < batch.count ? batch.firstId + item : undefined;
      if (row === undefined && batchId === undefined) return;
      if (batchId === undefined || (row !== undefined && row.id < batchId)) {
        next++;
        lastRowId = row!.id;
        yield this.withPayload(row!) as DatagramRow;
      } else yield batch!.row(item++);
    }
  }

  /** The bytes of a row kept in the payload file (for readers with queries of their own, such as replay's recordings). */
  externalPayload(where: ExternalPayload, cap?: number): RowPayload {
    return this.external.read(where, cap);
  }

  events(sessionId: number): EventRow[] {
    return this.db.prepare("SELECT * FROM events WHERE session_id = ? ORDER BY id").all(sessionId) as EventRow[];
  }

  /** A page of the session's chunks without payload (see the file comment). */
  chunkMeta(sessionId: number, query: PageQuery): ChunkMeta[] {
    return this.metaPage("chunks", "id, session_id, seq, at, direction, size, verdict", sessionId, query) as ChunkMeta[];
  }

  /** A page of the session's datagrams without payload: its rows and its batches' datagrams, merged in (seq, id) order. */
  datagramMeta(sessionId: number, query: PageQuery): DatagramMeta[] {
    const columns =
      "id, session_id, seq, at, direction, peer_type, peer_host, peer_port, from_host, from_port, to_host, to_port, size, verdict, reason, detail";
    const limit = clampLimit(query.limit);
    const rows = this.metaPage("datagram_rows", columns, sessionId, query) as DatagramMeta[];
    const batched = this.batchMeta(sessionId, query, limit);
    const descending = query.before !== undefined;
    const out: DatagramMeta[] = [];
    let r = 0;
    let b = 0;
    while (out.length < limit && (r < rows.length || b < batched.length)) {
      const row = rows[r];
      const other = batched[b];
      if (other === undefined || (row !== undefined && compareKeys(row, other) < 0 !== descending)) {
        out.push(row!);
        r++;
      } else {
        out.push(other);
        b++;
      }
    }
    return out;
  }

  /** Payload of these chunks (by id), each of data and sent cut to `cap` bytes (all of it without a cap). */
  chunkPayload(ids: readonly number[], cap?: number): Map<number, RowPayload> {
    return this.payload("chunks", ids, cap);
  }

  datagramPayload(ids: readonly number[], cap?: number): Map<number, RowPayload> {
    const out = this.payload("datagram_rows", ids, cap);
    for (const id of ids) {
      if (out.has(id)) continue;
      const batch = this.batchOf(id);
      if (batch !== undefined) out.set(id, batch.bytes(id - batch.firstId, cap === undefined ? undefined : Math.max(0, Math.floor(cap))));
    }
    return out;
  }

  /** A page of the session's events by id (ascending after `afterId` or from the start, descending before `beforeId`). */
  eventPage(sessionId: number, query: EventPageQuery): EventRow[] {
    const cap = Math.max(1, Math.floor(query.cap ?? 1 << 30));
    const limit = clampLimit(query.limit);
    const where = query.beforeId !== undefined ? "AND id < ? ORDER BY id DESC" : "AND id > ? ORDER BY id ASC";
    const from = query.beforeId ?? query.afterId ?? 0;
    return this.db
      .prepare(
        `SELECT id, session_id, run_id, at, kind, addon, hook, location, code,
           CASE WHEN length(message) > ${cap} THEN substr(message, 1, ${cap}) || '…' ELSE message END AS message
         FROM events WHERE session_id = ? ${where} LIMIT ${limit}`,
      )
      .all(sessionId, from) as EventRow[];
  }

  /** How many chunks, datagrams or events the session has, counting at most `cap` (an index range, no payload read). */
  rowCount(table: "chunks" | "datagrams" | "events", sessionId: number, cap: number): number {
    const limit = Math.max(0, Math.floor(cap));
    const count = (from: string) =>
      (this.db.prepare(`SELECT count(*) AS n FROM (SELECT 1 FROM ${from} WHERE session_id = ? LIMIT ${limit})`).get(sessionId) as { n: number }).n;
    if (table !== "datagrams") return count(table);
    const batched = this.db
      .prepare(`SELECT coalesce(sum(count), 0) AS n FROM (SELECT count FROM datagram_batches WHERE session_id = ? LIMIT ${limit})`)
      .get(sessionId) as { n: number };
    return Math.min(limit, count("datagram_rows") + batched.n);
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
    return { ...row, fileBytes: captureSize(this.file) };
  }

  close(): void {
    this.db.close();
    this.external.close();
  }

  private *rows<Row>(table: "chunks", sessionId: number): Generator<Row, void, undefined> {
    for (const row of this.db.prepare(`SELECT * FROM ${table} WHERE session_id = ? ORDER BY id`).iterate(sessionId)) {
      yield this.withPayload(row as StoredPayload) as Row;
    }
  }

  /** A stored row with its payload in `data` and `sent`, and without the payload file's columns. */
  private withPayload(row: StoredPayload): Omit<StoredPayload, "payload_at" | "payload_data" | "payload_sent"> {
    const { payload_at, payload_data, payload_sent, ...rest } = row;
    if (payload_at === null) return rest;
    const bytes = this.external.read({ at: payload_at, dataBytes: payload_data ?? 0, sentBytes: payload_sent });
    return { ...rest, data: bytes.data, sent: bytes.sent };
  }

  /**
   * Up to `limit` datagrams of the session's batches after (or before) the query's key, in its
   * order. A session's batches hold rising, disjoint seq ranges (datagram-batches.ts), so this
   * reads them in max_seq order from the one that holds the key, a batch at a time.
   */
  private batchMeta(sessionId: number, query: PageQuery, limit: number): DatagramMeta[] {
    const out: DatagramMeta[] = [];
    const take = (row: StoredBatch, keep: (meta: DatagramMeta) => boolean, descending: boolean): void => {
      const batch = DecodedBatch.of(row, this.file);
      for (let k = 0; k < batch.count && out.length < limit; k++) {
        const meta = batch.meta(descending ? batch.count - 1 - k : k);
        if (keep(meta)) out.push(meta);
      }
    };
    if (query.before !== undefined) {
      const key = query.before;
      const before = (meta: DatagramMeta) => compareKeys(meta, key) < 0;
      // The batch that may hold the key, then the ones wholly before it.
      const holding = this.db
        .prepare(`SELECT ${BATCH_READ} FROM datagram_batches WHERE session_id = ? AND max_seq >= ? ORDER BY max_seq LIMIT 1`)
        .get(sessionId, key.seq) as (StoredBatch & { min_seq: number }) | undefined;
      if (holding !== undefined && holding.min_seq <= key.seq) take(holding, before, true);
      const earlier = this.db.prepare(`SELECT ${BATCH_READ} FROM datagram_batches WHERE session_id = ? AND max_seq < ? ORDER BY max_seq DESC`);
      for (const row of earlier.iterate(sessionId, key.seq) as IterableIterator<StoredBatch>) {
        if (out.length >= limit) break;
        take(row, before, true);
      }
      return out;
    }
    const key = query.after;
    const after = key === undefined ? () => true : (meta: DatagramMeta) => compareKeys(meta, key) > 0;
    const later = this.db.prepare(`SELECT ${BATCH_READ} FROM datagram_batches WHERE session_id = ? AND max_seq >= ? ORDER BY max_seq`);
    for (const row of later.iterate(sessionId, key?.seq ?? -Number.MAX_SAFE_INTEGER) as IterableIterator<StoredBatch>) {
      if (out.length >= limit) break;
      take(row, after, false);
    }
    return out;
  }

  /** The batch that holds datagram `id`, with its payload; the last one read is kept (a page's ids share few batches). */
  private batchOf(id: number): DecodedBatch | undefined {
    const kept = this.lastBatch;
    if (kept !== undefined && id >= kept.firstId && id < kept.firstId + kept.count) return kept;
    const row = this.db.prepare(`SELECT ${BATCH_READ}, payload FROM datagram_batches WHERE first_id <= ? ORDER BY first_id DESC LIMIT 1`).get(id) as
      | StoredBatch
      | undefined;
    if (row === undefined || id >= row.first_id + row.count) return undefined;
    this.lastBatch = DecodedBatch.of(row, this.file);
    return this.lastBatch;
  }

  private metaPage(table: "chunks" | "datagram_rows", columns: string, sessionId: number, query: PageQuery): unknown[] {
    const limit = clampLimit(query.limit);
    const lengths = `CASE WHEN payload_at IS NULL THEN length(data) ELSE payload_data END AS dataBytes,
      CASE WHEN payload_at IS NULL THEN length(sent) ELSE payload_sent END AS sentBytes`;
    // Row values over (seq, id) walk the (session_id, seq) index; length() reads no payload.
    if (query.before !== undefined) {
      return this.db
        .prepare(`SELECT ${columns}, ${lengths} FROM ${table} WHERE session_id = ? AND (seq, id) < (?, ?) ORDER BY seq DESC, id DESC LIMIT ${limit}`)
        .all(sessionId, query.before.seq, query.before.id);
    }
    const after = query.after ?? { seq: -Number.MAX_SAFE_INTEGER, id: -Number.MAX_SAFE_INTEGER };
    return this.db
      .prepare(`SELECT ${columns}, ${lengths} FROM ${table} WHERE session_id = ? AND (seq, id) > (?, ?) ORDER BY seq ASC, id ASC LIMIT ${limit}`)
      .all(sessionId, after.seq, after.id);
  }

  private payload(table: "chunks" | "datagram_rows", ids: readonly number[], cap: number | undefined): Map<number, RowPayload> {
    const out = new Map<number, RowPayload>();
    const cut = (column: string) => (cap === undefined ? column : `substr(${column}, 1, ${Math.max(0, Math.floor(cap))})`);
    const statement = this.db.prepare(
      `SELECT ${cut("data")} AS data, ${cut("sent")} AS sent, payload_at, payload_data, payload_sent FROM ${table} WHERE id = ?`,
    );
    for (const id of ids) {
      const row = statement.get(id) as StoredPayload | undefined;
      if (row === undefined) continue;
      if (row.payload_at !== null) {
        out.set(id, this.external.read({ at: row.payload_at, dataBytes: row.payload_data ?? 0, sentBytes: row.payload_sent }, cap));
        continue;
      }
      // substr() of an empty blob can come back as text: payload is always a Buffer.
      out.set(id, { data: asBuffer(row.data) ?? Buffer.alloc(0), sent: asBuffer(row.sent) });
    }
    return out;
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

function asBuffer(value: Buffer | string | null): Buffer | null {
  return value === null ? null : Buffer.isBuffer(value) ? value : Buffer.from(value, "latin1");
}

function clampLimit(limit: number): number {
  return Math.max(1, Math.min(10_000, Math.floor(limit)));
}
