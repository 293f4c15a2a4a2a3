/**
 * Applies the recorder's batches to the capture file: one transaction per batch, statements
 * prepared once. Runs in the capture worker (writer-worker.ts); tests may drive it directly.
 *
 * A batch's large payloads (rows over INLINE_MAX bytes) are appended to the payload file first,
 * in one write, and the transaction then inserts rows pointing at them and records the file's
 * new committed length (payload-file.ts): each payload byte is written once, not to the WAL and
 * again to the database.
 *
 * Records (batch.ts) are applied with fewer statements, and the batch's transaction is what
 * makes that invisible to readers:
 * - Datagrams go to their session's batch row (datagram-batches.ts): one row per session per
 *   writer batch, up to BATCH_ROWS datagrams, instead of a row each. Datagram ids come from the
 *   writer's counter, shared by batches and the datagrams that stay rows (recorded out of seq
 *   order, or with their payload in the payload file); a session's batch so far takes its ids
 *   before a row of the session does, so a session's ids follow the order of recording.
 * - Chunk and datagram rows go in multi-row INSERTs of up to ROWS_PER_INSERT rows of one table,
 *   in order (session records and batched datagrams between them do not break a group).
 * - A session opened in the batch is built in memory from its records (open, auth, request,
 *   reply, progress, close) and inserted whole at the end of the batch, or before an object
 *   operation (event, TLS) that names it: one INSERT instead of an INSERT and an UPDATE per fact.
 *   Its chunk and datagram rows may go in before it, so this connection does not check foreign
 *   keys (better-sqlite3 turns them on): the writer makes every row it writes and the batch's
 *   transaction commits a session with its rows. With the row inserted at its first chunk, a
 *   short session cost an INSERT and two UPDATEs (progress, close) of its wide row and its status
 *   index; paired handshake runs, capture on: 26.3 against 30.3 us per session of CPU outside the
 *   relay's thread (the writer and the GC helpers). (Deferring the foreign keys to the commit
 *   instead made every session INSERT scan the tables that refer to sessions.)
 */
import type Database from "better-sqlite3";
import {
  AUTH_SLOTS,
  type Batch,
  CLOSE_FIRST_COUNT,
  CLOSE_SLOTS,
  COUNT_SLOTS,
  KIND_AUTH,
  KIND_CHUNK,
  KIND_CLOSE,
  KIND_DATAGRAM,
  KIND_OPEN,
  KIND_PROGRESS,
  KIND_REPLY,
  KIND_REQUEST,
  OPEN_SLOTS,
  PROGRESS_FIRST_COUNT,
  REPLY_SLOTS,
  REQUEST_SLOTS,
  type Operation,
  R_AT,
  R_DATA_LENGTH,
  R_DATA_OFFSET,
  R_DETAIL,
  R_DIRECTION,
  R_FROM_HOST,
  R_FROM_PORT,
  R_KIND,
  R_PEER_HOST,
  R_PEER_PORT,
  R_PEER_TYPE,
  R_REASON,
  R_SENT_LENGTH,
  R_SENT_OFFSET,
  R_SEQ,
  R_SID,
  R_SIZE,
  R_TO_HOST,
  R_TO_PORT,
  R_VERDICT,
  RECORD_SLOTS,
  type Slice,
} from "./batch.js";
import { openCapture } from "./database.js";
import { DATAGRAM_COLUMNS } from "./schema.js";
import { BATCH_COLUMNS, type BatchValues, DatagramBatcher } from "./datagram-batches.js";
import { type ExternalPayload, finishSwap, INLINE_MAX, PayloadAppender } from "./payload-file.js";

type Statement = Database.Statement;

/**
 * WAL size (estimated) at which a burst is interrupted for a checkpoint; bounds disk use and crash
 * recovery. The WAL holds rows and small payloads only (large ones go to the payload file), so
 * this is rarely reached; otherwise checkpoints wait for traffic to pause.
 */
export const CHECKPOINT_BYTES = 256 * 1024 * 1024;

/** The most rows one INSERT of records carries. */
const ROWS_PER_INSERT = 16;
const CHUNK_COLUMNS = "session_id, seq, at, direction, data, size, sent, verdict, payload_at, payload_data, payload_sent";
const CHUNK_ARITY = 11;
/** A row of `datagram_rows` binds every column, its id (from the writer's counter) first. */
const DATAGRAM_ARITY = 21;

/** The sessions columns a session's records set, in the order of SESSION_INSERT's values; the others keep their defaults. */
const S = {
  id: 0,
  run_id: 1,
  engine_id: 2,
  opened_at: 3,
  client_host: 4,
  client_port: 5,
  local_host: 6,
  local_port: 7,
  version: 8,
  auth_method: 9,
  auth_offered: 10,
  user: 11,
  requested_at: 12,
  command: 13,
  requested_type: 14,
  requested_host: 15,
  requested_port: 16,
  replied_at: 17,
  reply: 18,
  reply_code: 19,
  errno: 20,
  bound_host: 21,
  bound_port: 22,
  target_host: 23,
  target_port: 24,
  remote_host: 25,
  remote_port: 26,
  attempts: 27,
  route: 28,
  closed_at: 29,
  status: 30,
  close_reason: 31,
  close_errno: 32,
  bytes_up_received: 33,
  bytes_up_sent: 34,
  bytes_down_received: 35,
  bytes_down_sent: 36,
  captured_bytes: 37,
  truncated: 38,
  uncaptured_datagrams: 39,
} as const;
const SESSION_COLUMNS = Object.keys(S);
const SESSION_INSERT = `INSERT INTO sessions (${SESSION_COLUMNS.join(", ")}) VALUES (${SESSION_COLUMNS.map(() => "?").join(", ")})`;
/** A new session row: the schema's defaults for the columns in S (NULL unless the schema says otherwise). */
const NEW_SESSION: readonly unknown[] = SESSION_COLUMNS.map((c) =>
  c === "status" ? "open" : c.startsWith("bytes_") || c === "captured_bytes" || c === "truncated" || c === "uncaptured_datagrams" ? 0 : null,
);

export interface WriterOptions {
  /**
   * Tests: bound the capture to make "disk full" happen on demand: the database to this many
   * pages, the payload file to as many bytes as they hold.
   */
  readonly maxPageCount?: number;
}

export class CaptureWriter {
  private readonly db: Database.Database;
  private readonly open: Statement;
  private readonly auth: Statement;
  private readonly request: Statement;
  private readonly reply: Statement;
  private readonly chunk: Statement;
  private readonly datagram: Statement;
  private readonly event: Statement;
  private readonly tags: Statement;
  private readonly links: Statement;
  private readonly detected: Statement;
  private readonly tls: Statement;
  private readonly progress: Statement;
  private readonly close: Statement;
  private readonly payloadLength: Statement;
  private readonly payload: PayloadAppender;
  private readonly batcher: DatagramBatcher;
  private readonly insertBatch: Statement;
  /** The next datagram id: rows and batches take theirs from here (datagram-batches.ts). */
  private nextDatagramId: number;
  private readonly applyAll: (ops: readonly Operation[], arena: Buffer | undefined, places: readonly (ExternalPayload | undefined)[]) => void;
  /** Bytes written to the WAL since the last checkpoint (an estimate). */
  private unchecked = 0;
  /** INSERTs of records by kind and row count, prepared when first needed, with their parameter arrays (reused). */
  private readonly rowInserts = new Map<number, { readonly statement: Statement; readonly params: unknown[] }>();
  /** The batch being written: its records, their strings and where large payloads went (by record index). */
  private records: Float64Array = NO_RECORDS;
  private strings: readonly string[] = [];
  private recordPlaces: (ExternalPayload | undefined)[] = [];
  /** Sessions opened in the batch being written and not inserted yet, by id: their row, in S's order. */
  private readonly pending = new Map<number, unknown[]>();
  private readonly insertSession: Statement;
  /** The record indexes of one multi-row INSERT, and (datagram rows) their ids. */
  private readonly group = new Array<number>(ROWS_PER_INSERT).fill(0);
  private readonly groupIds = new Array<number>(ROWS_PER_INSERT).fill(0);

  constructor(
    file: string,
    private readonly runId: number,
    options: WriterOptions = {},
  ) {
    this.db = openCapture(file);
    if (options.maxPageCount !== undefined) this.db.pragma(`max_page_count = ${options.maxPageCount}`);
    const db = this.db;
    try {
      finishSwap(db, file);
      const committed = (db.prepare("SELECT bytes FROM payload_file WHERE id = 1").get() as { bytes: number } | undefined)?.bytes ?? 0;
      const pageSize = db.pragma("page_size", { simple: true }) as number;
      this.payload = new PayloadAppender(file, committed, options.maxPageCount === undefined ? undefined : options.maxPageCount * pageSize);
    } catch (err) {
      db.close();
      throw err;
    }
    this.payloadLength = db.prepare("UPDATE payload_file SET bytes = ? WHERE id = 1");
    // Rows may precede their session row within a batch (see the top of this file).
    this.db.pragma("foreign_keys = OFF");
    this.insertBatch = db.prepare(`INSERT INTO datagram_batches (${BATCH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.batcher = new DatagramBatcher(
      (values: BatchValues) => this.insertBatch.run(...values),
      (count) => {
        const first = this.nextDatagramId;
        this.nextDatagramId += count;
        return first;
      },
    );
    this.nextDatagramId = nextDatagramId(db);
    this.db.pragma("wal_autocheckpoint = 0");
    // After a checkpoint the WAL is reused from its start; this trims the file back down then.
    this.db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
    this.open = db.prepare(
      "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.auth = db.prepare("UPDATE sessions SET version = ?, auth_method = ?, auth_offered = ?, user = ? WHERE id = ?");
    this.request = db.prepare(
      "UPDATE sessions SET requested_at = ?, version = ?, command = ?, requested_type = ?, requested_host = ?, requested_port = ?, user = coalesce(?, user) WHERE id = ?",
    );
    this.reply = db.prepare(
      `UPDATE sessions SET replied_at = ?, reply = ?, reply_code = ?, errno = ?, bound_host = ?, bound_port = ?,
         target_host = coalesce(?, target_host), target_port = coalesce(?, target_port),
         remote_host = coalesce(?, remote_host), remote_port = coalesce(?, remote_port), attempts = coalesce(?, attempts),
         route = coalesce(?, route)
       WHERE id = ?`,
    );
    this.chunk = db.prepare(
      `INSERT INTO chunks (session_id, seq, at, direction, data, size, sent, verdict, payload_at, payload_data, payload_sent)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.datagram = db.prepare(`INSERT INTO datagram_rows (${DATAGRAM_COLUMNS}) VALUES (${new Array(DATAGRAM_ARITY).fill("?").join(", ")})`);
    this.event = db.prepare("INSERT INTO events (session_id, run_id, at, kind, addon, hook, location, code, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    this.tags = db.prepare("UPDATE sessions SET tags = ? WHERE id = ?");
    this.links = db.prepare("UPDATE sessions SET replay_of = coalesce(?, replay_of), served_from = coalesce(?, served_from) WHERE id = ?");
    this.detected = db.prepare("UPDATE sessions SET protocol = ?, sni = ?, protocol_info = ? WHERE id = ?");
    this.tls = db.prepare(
      `INSERT OR REPLACE INTO tls (session_id, at, intercepted, decided_by, sni, alpn_offered, versions_offered,
         client_version, client_cipher, client_alpn, upstream_version, upstream_cipher, upstream_alpn,
         cert_subject, cert_issuer, cert_sans, cert_valid_from, cert_valid_to, cert_fingerprint, verification,
         failure_side, failure_code, failure_message)
       VALUES (@session_id, @at, @intercepted, @decided_by, @sni, @alpn_offered, @versions_offered,
         @client_version, @client_cipher, @client_alpn, @upstream_version, @upstream_cipher, @upstream_alpn,
         @cert_subject, @cert_issuer, @cert_sans, @cert_valid_from, @cert_valid_to, @cert_fingerprint, @verification,
         @failure_side, @failure_code, @failure_message)`,
    );
    this.progress = db.prepare(
      `UPDATE sessions SET bytes_up_received = ?, bytes_up_sent = ?, bytes_down_received = ?, bytes_down_sent = ?, captured_bytes = ?, truncated = ?,
         uncaptured_datagrams = ? WHERE id = ?`,
    );
    this.close = db.prepare(
      `UPDATE sessions SET closed_at = ?, status = ?, close_reason = ?, close_errno = ?, bytes_up_received = ?, bytes_up_sent = ?,
         bytes_down_received = ?, bytes_down_sent = ?, captured_bytes = ?, truncated = ?, uncaptured_datagrams = ? WHERE id = ?`,
    );
    this.insertSession = db.prepare(SESSION_INSERT);
    this.applyAll = db.transaction((ops: readonly Operation[], arena: Buffer | undefined, places: readonly (ExternalPayload | undefined)[]) => {
      for (let i = 0; i < ops.length; i++) this.apply(ops[i]!, arena, places[i]);
      this.batcher.finishAll();
      for (const row of this.pending.values()) this.insertSession.run(...row);
      this.pending.clear();
      if (places.length > 0 || this.recordPlaces.length > 0) this.payloadLength.run(this.payload.length);
    });
  }

  write(batch: Batch): void {
    const arena = batch.arena === undefined ? undefined : Buffer.from(batch.arena);
    const before = this.payload.length;
    const records = batch.records;
    this.records = records === undefined ? NO_RECORDS : new Float64Array(records.buffer, 0, records.count * RECORD_SLOTS);
    this.strings = records?.strings ?? [];
    this.batcher.begin(this.records, this.strings, arena);
    const firstId = this.nextDatagramId;
    try {
      const places = this.appendExternal(batch.ops, arena);
      this.applyAll(batch.ops, arena, places);
    } catch (err) {
      this.payload.rewind(before);
      this.batcher.discard();
      this.nextDatagramId = firstId;
      throw err;
    } finally {
      this.batcher.begin(NO_RECORDS, [], undefined);
      this.records = NO_RECORDS;
      this.strings = [];
      this.recordPlaces = [];
      this.pending.clear();
    }
    // Inline payload plus a little for the rows, as an estimate of what the WAL grew by.
    this.unchecked += batch.bytes - (this.payload.length - before) + (batch.ops.length + (records?.count ?? 0)) * 64;
    if (this.unchecked >= CHECKPOINT_BYTES) this.checkpoint();
  }

  /**
   * Appends the payload of the batch's large rows to the payload file in one write (slices that
   * follow each other in the arena merged); returns, per operation, where its payload went, and
   * sets `recordPlaces` for records. Empty arrays when no row is large.
   */
  private appendExternal(ops: readonly Operation[], arena: Buffer | undefined): (ExternalPayload | undefined)[] {
    if (arena === undefined) return [];
    const places: (ExternalPayload | undefined)[] = [];
    const pieces: Slice[] = [];
    let offset = this.payload.length;
    const piece = (at: number, length: number): void => {
      const last = pieces.at(-1);
      if (last !== undefined && last.offset + last.length === at) pieces[pieces.length - 1] = { offset: last.offset, length: last.length + length };
      else if (length > 0) pieces.push({ offset: at, length });
    };
    /** Where a row's payload goes when it is large (`sentAt` -1: no `sent`); undefined when it stays inline. */
    const external = (dataAt: number, dataLength: number, sentAt: number, sentLength: number): ExternalPayload | undefined => {
      const sent = sentAt < 0 ? 0 : sentLength;
      if (dataLength + sent <= INLINE_MAX) return undefined;
      const place = { at: offset, dataBytes: dataLength, sentBytes: sentAt < 0 ? null : sent };
      offset += dataLength + sent;
      piece(dataAt, dataLength);
      if (sentAt >= 0) piece(sentAt, sent);
      return place;
    };
    const records = this.records;
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.op === "chunk" || op.op === "datagram") {
        const place = external(op.data.offset, op.data.length, op.sent === null ? -1 : op.sent.offset, op.sent?.length ?? 0);
        if (place !== undefined) places[i] = place;
      } else if (op.op === "records") {
        for (let r = op.from; r < op.from + op.count; r++) {
          const b = r * RECORD_SLOTS;
          const kind = records[b + R_KIND];
          if (kind !== KIND_CHUNK && kind !== KIND_DATAGRAM) continue;
          const place = external(records[b + R_DATA_OFFSET]!, records[b + R_DATA_LENGTH]!, records[b + R_SENT_OFFSET]!, records[b + R_SENT_LENGTH]!);
          if (place !== undefined) this.recordPlaces[r] = place;
        }
      }
    }
    if (pieces.length > 0) this.payload.append(pieces.map((s) => arena.subarray(s.offset, s.offset + s.length)));
    return places;
  }

  /**
   * Applies records `from` to `from + count - 1` in order: a datagram whose payload is inline goes
   * to its session's batch when it can (datagram-batches.ts); other chunk and datagram records
   * become rows, in groups of up to ROWS_PER_INSERT rows of one table (a row of the other table
   * ends a group; session records and batched datagrams between them are applied where they are
   * and do not; a session row being built goes in before the group).
   */
  private insertRecords(from: number, count: number, arena: Buffer | undefined): void {
    const records = this.records;
    const group = this.group;
    const end = from + count;
    let i = from;
    while (i < end) {
      const kind = records[i * RECORD_SLOTS + R_KIND]!;
      if (kind !== KIND_CHUNK && kind !== KIND_DATAGRAM) {
        this.applySessionRecord(kind, i * RECORD_SLOTS);
        i++;
        continue;
      }
      if (this.batched(kind, i)) {
        i++;
        continue;
      }
      let rows = 0;
      for (; i < end && rows < ROWS_PER_INSERT; i++) {
        const k = records[i * RECORD_SLOTS + R_KIND]!;
        if (k === KIND_CHUNK || k === KIND_DATAGRAM) {
          if (this.batched(k, i)) continue;
          if (k !== kind) break;
          // A datagram row's id is taken now, in the order of recording (a batch of its session
          // begun after it, within this group, takes its ids later).
          if (k === KIND_DATAGRAM) this.groupIds[rows] = this.datagramId(records[i * RECORD_SLOTS + R_SID]!);
          group[rows++] = i;
        } else this.applySessionRecord(k, i * RECORD_SLOTS);
      }
      const { statement, params } = this.rowInsert(kind, rows);
      let p = 0;
      if (kind === KIND_CHUNK) for (let g = 0; g < rows; g++) p = this.chunkRow(params, p, group[g]!, arena);
      else for (let g = 0; g < rows; g++) p = this.datagramRow(params, p, group[g]!, this.groupIds[g]!, arena);
      // Spread, not the array: better-sqlite3 binds arguments directly but reads an array's elements
      // one property lookup at a time (16 rows of 20 values: about 1.0 against 1.3-1.5 us per row).
      statement.run(...params);
    }
  }

  /** Whether record `r` (a chunk or datagram) went to a datagram batch: a datagram with its payload inline, in seq order. */
  private batched(kind: number, r: number): boolean {
    return kind === KIND_DATAGRAM && this.recordPlaces[r] === undefined && this.batcher.add(r * RECORD_SLOTS);
  }

  /** Inserts the row of session `sid` now if it is still being built (an operation is about to update it). */
  private insertPending(sid: number | null): void {
    if (sid === null || this.pending.size === 0) return;
    const row = this.pending.get(sid);
    if (row === undefined) return;
    this.pending.delete(sid);
    this.insertSession.run(...row);
  }

  /** A session record (open, auth, request, reply, progress, close) at slot `b`, applied as its operation would be. */
  private applySessionRecord(kind: number, b: number): void {
    const r = this.records;
    const sid = r[b + R_SID]!;
    if (kind === KIND_CLOSE) this.batcher.ended(sid);
    if (kind === KIND_OPEN) {
      const row = NEW_SESSION.slice();
      row[S.id] = sid;
      row[S.run_id] = this.runId;
      row[S.engine_id] = r[b + OPEN_SLOTS.engineId]!;
      row[S.opened_at] = r[b + OPEN_SLOTS.at]!;
      row[S.client_host] = this.string(r[b + OPEN_SLOTS.clientHost]!);
      row[S.client_port] = r[b + OPEN_SLOTS.clientPort]!;
      row[S.local_host] = this.string(r[b + OPEN_SLOTS.localHost]!);
      row[S.local_port] = r[b + OPEN_SLOTS.localPort]!;
      this.pending.set(sid, row);
      return;
    }
    const row = this.pending.size === 0 ? undefined : this.pending.get(sid);
    if (row !== undefined) return this.buildSession(row, kind, b);
    switch (kind) {
      case KIND_AUTH:
        this.auth.run(
          this.string(r[b + AUTH_SLOTS.version]!),
          this.string(r[b + AUTH_SLOTS.method]!),
          this.string(r[b + AUTH_SLOTS.offered]!),
          this.string(r[b + AUTH_SLOTS.user]!),
          sid,
        );
        return;
      case KIND_REQUEST:
        this.request.run(
          r[b + REQUEST_SLOTS.at]!,
          this.string(r[b + REQUEST_SLOTS.version]!),
          this.string(r[b + REQUEST_SLOTS.command]!),
          this.string(r[b + REQUEST_SLOTS.type]!),
          this.string(r[b + REQUEST_SLOTS.host]!),
          r[b + REQUEST_SLOTS.port]!,
          this.string(r[b + REQUEST_SLOTS.user]!),
          sid,
        );
        return;
      case KIND_REPLY:
        this.reply.run(
          r[b + REPLY_SLOTS.at]!,
          r[b + REPLY_SLOTS.rep]!,
          this.string(r[b + REPLY_SLOTS.code]!),
          this.string(r[b + REPLY_SLOTS.errno]!),
          this.string(r[b + REPLY_SLOTS.boundHost]!),
          r[b + REPLY_SLOTS.boundPort]!,
          this.string(r[b + REPLY_SLOTS.targetHost]!),
          orNull(r[b + REPLY_SLOTS.targetPort]!),
          this.string(r[b + REPLY_SLOTS.remoteHost]!),
          orNull(r[b + REPLY_SLOTS.remotePort]!),
          this.string(r[b + REPLY_SLOTS.attempts]!),
          this.string(r[b + REPLY_SLOTS.route]!),
          sid,
        );
        return;
      case KIND_PROGRESS: {
        const c = b + PROGRESS_FIRST_COUNT;
        this.progress.run(
          r[c + COUNT_SLOTS.upReceived]!,
          r[c + COUNT_SLOTS.upSent]!,
          r[c + COUNT_SLOTS.downReceived]!,
          r[c + COUNT_SLOTS.downSent]!,
          r[c + COUNT_SLOTS.captured]!,
          r[c + COUNT_SLOTS.truncated]!,
          r[c + COUNT_SLOTS.uncaptured]!,
          sid,
        );
        return;
      }
      case KIND_CLOSE: {
        const c = b + CLOSE_FIRST_COUNT;
        this.close.run(
          r[b + CLOSE_SLOTS.at]!,
          this.string(r[b + CLOSE_SLOTS.status]!),
          this.string(r[b + CLOSE_SLOTS.reason]!),
          this.string(r[b + CLOSE_SLOTS.errno]!),
          r[c + COUNT_SLOTS.upReceived]!,
          r[c + COUNT_SLOTS.upSent]!,
          r[c + COUNT_SLOTS.downReceived]!,
          r[c + COUNT_SLOTS.downSent]!,
          r[c + COUNT_SLOTS.captured]!,
          r[c + COUNT_SLOTS.truncated]!,
          r[c + COUNT_SLOTS.uncaptured]!,
          sid,
        );
        return;
      }
      default:
        throw new Error(`unknown record kind ${kind}`);
    }
  }

  /** A session record applied to the row being built, as its UPDATE would change the row. */
  private buildSession(row: unknown[], kind: number, b: number): void {
    const r = this.records;
    switch (kind) {
      case KIND_AUTH:
        row[S.version] = this.string(r[b + AUTH_SLOTS.version]!);
        row[S.auth_method] = this.string(r[b + AUTH_SLOTS.method]!);
        row[S.auth_offered] = this.string(r[b + AUTH_SLOTS.offered]!);
        row[S.user] = this.string(r[b + AUTH_SLOTS.user]!);
        return;
      case KIND_REQUEST:
        row[S.requested_at] = r[b + REQUEST_SLOTS.at]!;
        row[S.version] = this.string(r[b + REQUEST_SLOTS.version]!);
        row[S.command] = this.string(r[b + REQUEST_SLOTS.command]!);
        row[S.requested_type] = this.string(r[b + REQUEST_SLOTS.type]!);
        row[S.requested_host] = this.string(r[b + REQUEST_SLOTS.host]!);
        row[S.requested_port] = r[b + REQUEST_SLOTS.port]!;
        row[S.user] = this.string(r[b + REQUEST_SLOTS.user]!) ?? row[S.user];
        return;
      case KIND_REPLY:
        row[S.replied_at] = r[b + REPLY_SLOTS.at]!;
        row[S.reply] = r[b + REPLY_SLOTS.rep]!;
        row[S.reply_code] = this.string(r[b + REPLY_SLOTS.code]!);
        row[S.errno] = this.string(r[b + REPLY_SLOTS.errno]!);
        row[S.bound_host] = this.string(r[b + REPLY_SLOTS.boundHost]!);
        row[S.bound_port] = r[b + REPLY_SLOTS.boundPort]!;
        row[S.target_host] = this.string(r[b + REPLY_SLOTS.targetHost]!) ?? row[S.target_host];
        row[S.target_port] = orNull(r[b + REPLY_SLOTS.targetPort]!) ?? row[S.target_port];
        row[S.remote_host] = this.string(r[b + REPLY_SLOTS.remoteHost]!) ?? row[S.remote_host];
        row[S.remote_port] = orNull(r[b + REPLY_SLOTS.remotePort]!) ?? row[S.remote_port];
        row[S.attempts] = this.string(r[b + REPLY_SLOTS.attempts]!) ?? row[S.attempts];
        row[S.route] = this.string(r[b + REPLY_SLOTS.route]!) ?? row[S.route];
        return;
      case KIND_PROGRESS:
        this.countsInto(row, b + PROGRESS_FIRST_COUNT);
        return;
      case KIND_CLOSE:
        row[S.closed_at] = r[b + CLOSE_SLOTS.at]!;
        row[S.status] = this.string(r[b + CLOSE_SLOTS.status]!);
        row[S.close_reason] = this.string(r[b + CLOSE_SLOTS.reason]!);
        row[S.close_errno] = this.string(r[b + CLOSE_SLOTS.errno]!);
        this.countsInto(row, b + CLOSE_FIRST_COUNT);
        return;
      default:
        throw new Error(`unknown record kind ${kind}`);
    }
  }

  private countsInto(row: unknown[], c: number): void {
    const r = this.records;
    row[S.bytes_up_received] = r[c + COUNT_SLOTS.upReceived]!;
    row[S.bytes_up_sent] = r[c + COUNT_SLOTS.upSent]!;
    row[S.bytes_down_received] = r[c + COUNT_SLOTS.downReceived]!;
    row[S.bytes_down_sent] = r[c + COUNT_SLOTS.downSent]!;
    row[S.captured_bytes] = r[c + COUNT_SLOTS.captured]!;
    row[S.truncated] = r[c + COUNT_SLOTS.truncated]!;
    row[S.uncaptured_datagrams] = r[c + COUNT_SLOTS.uncaptured]!;
  }

  /** The INSERT of `rows` rows of a table (KIND_CHUNK or KIND_DATAGRAM; prepared when first needed) and its parameter array (reused). */
  private rowInsert(kind: number, rows: number): { readonly statement: Statement; readonly params: unknown[] } {
    const key = kind * 1024 + rows;
    let insert = this.rowInserts.get(key);
    if (insert === undefined) {
      const arity = kind === KIND_CHUNK ? CHUNK_ARITY : DATAGRAM_ARITY;
      const tuple = `(${new Array(arity).fill("?").join(", ")})`;
      const into = kind === KIND_CHUNK ? `chunks (${CHUNK_COLUMNS})` : `datagram_rows (${DATAGRAM_COLUMNS})`;
      insert = {
        statement: this.db.prepare(`INSERT INTO ${into} VALUES ${new Array(rows).fill(tuple).join(", ")}`),
        params: new Array(rows * arity).fill(null),
      };
      this.rowInserts.set(key, insert);
    }
    return insert;
  }

  /** A chunk record's values (CHUNK_COLUMNS) into `params` from `p`; returns where the next row's start. */
  private chunkRow(params: unknown[], p: number, r: number, arena: Buffer | undefined): number {
    const records = this.records;
    const b = r * RECORD_SLOTS;
    params[p] = records[b + R_SID];
    params[p + 1] = records[b + R_SEQ];
    params[p + 2] = records[b + R_AT];
    params[p + 3] = records[b + R_DIRECTION] === 0 ? "up" : "down";
    params[p + 5] = records[b + R_SIZE];
    params[p + 7] = this.string(records[b + R_VERDICT]!);
    this.payloadValues(params, p + 4, p + 6, p + 8, b, r, arena);
    return p + CHUNK_ARITY;
  }

  /** A datagram record's values (DATAGRAM_COLUMNS, `id` first) into `params` from `p`; returns where the next row's start. */
  private datagramRow(params: unknown[], p: number, r: number, id: number, arena: Buffer | undefined): number {
    const records = this.records;
    const b = r * RECORD_SLOTS;
    params[p] = id;
    params[p + 1] = records[b + R_SID];
    params[p + 2] = records[b + R_SEQ];
    params[p + 3] = records[b + R_AT];
    params[p + 4] = records[b + R_DIRECTION] === 0 ? "up" : "down";
    params[p + 5] = this.string(records[b + R_PEER_TYPE]!);
    params[p + 6] = this.string(records[b + R_PEER_HOST]!);
    params[p + 7] = orNull(records[b + R_PEER_PORT]!);
    params[p + 8] = this.string(records[b + R_FROM_HOST]!);
    params[p + 9] = records[b + R_FROM_PORT];
    params[p + 10] = this.string(records[b + R_TO_HOST]!);
    params[p + 11] = orNull(records[b + R_TO_PORT]!);
    params[p + 13] = records[b + R_SIZE];
    params[p + 15] = this.string(records[b + R_VERDICT]!);
    params[p + 16] = this.string(records[b + R_REASON]!);
    params[p + 17] = this.string(records[b + R_DETAIL]!);
    this.payloadValues(params, p + 12, p + 14, p + 18, b, r, arena);
    return p + DATAGRAM_ARITY;
  }

  /** The id of a datagram row of session `sid` recorded now: its batch so far takes its ids first (ids follow the order of recording). */
  private datagramId(sid: number): number {
    this.batcher.finishSession(sid);
    return this.nextDatagramId++;
  }

  /** A record's data and sent columns, and its three payload_* columns from `placeAt` on. */
  private payloadValues(params: unknown[], dataAt: number, sentAt: number, placeAt: number, b: number, r: number, arena: Buffer | undefined): void {
    const records = this.records;
    const sentOffset = records[b + R_SENT_OFFSET]!;
    const place = this.recordPlaces[r];
    if (place === undefined) {
      params[dataAt] = bytesAt(arena, records[b + R_DATA_OFFSET]!, records[b + R_DATA_LENGTH]!);
      params[sentAt] = sentOffset < 0 ? null : bytesAt(arena, sentOffset, records[b + R_SENT_LENGTH]!);
      params[placeAt] = null;
      params[placeAt + 1] = null;
      params[placeAt + 2] = null;
    } else {
      params[dataAt] = EMPTY;
      params[sentAt] = sentOffset < 0 ? null : EMPTY;
      params[placeAt] = place.at;
      params[placeAt + 1] = place.dataBytes;
      params[placeAt + 2] = place.sentBytes;
    }
  }

  /** A string slot's value: the batch's string, or null (-1). */
  private string(index: number): string | null {
    return index < 0 ? null : this.strings[index]!;
  }

  /**
   * Copies the WAL into the database file. SQLite would do it every 1000 pages, in the middle of
   * a burst; copying costs about as much CPU again as writing, so it waits for a quiet moment
   * (the worker calls this when no batch came for a while) or for CHECKPOINT_BYTES of WAL.
   * PASSIVE: never waits for readers (a TUI may be reading); what they still use is copied later.
   */
  checkpoint(): void {
    if (this.unchecked === 0) return;
    this.unchecked = 0;
    this.db.pragma("wal_checkpoint(PASSIVE)");
  }

  private apply(op: Operation, arena: Buffer | undefined, place: ExternalPayload | undefined): void {
    // An object operation on a session whose row is still being built: the row goes in first.
    if (op.op !== "records") this.insertPending(op.sid);
    switch (op.op) {
      case "open":
        this.open.run(op.sid, this.runId, op.engineId, op.at, op.clientHost, op.clientPort, op.localHost, op.localPort);
        return;
      case "auth":
        this.auth.run(op.version, op.method, JSON.stringify(op.offered), op.user, op.sid);
        return;
      case "request":
        this.request.run(op.at, op.version, op.command, op.type, op.host, op.port, op.user, op.sid);
        return;
      case "reply":
        this.reply.run(
          op.at,
          op.rep,
          op.code,
          op.errno,
          op.boundHost,
          op.boundPort,
          op.targetHost,
          op.targetPort,
          op.remoteHost,
          op.remotePort,
          op.attempts,
          op.route,
          op.sid,
        );
        return;
      case "chunk":
        if (place !== undefined) {
          this.chunk.run(
            op.sid,
            op.seq,
            op.at,
            op.direction,
            EMPTY,
            op.size,
            op.sent === null ? null : EMPTY,
            op.verdict,
            place.at,
            place.dataBytes,
            place.sentBytes,
          );
        } else {
          this.chunk.run(
            op.sid,
            op.seq,
            op.at,
            op.direction,
            slice(arena, op.data),
            op.size,
            op.sent === null ? null : slice(arena, op.sent),
            op.verdict,
            null,
            null,
            null,
          );
        }
        return;
      case "datagram":
        this.datagram.run(
          this.datagramId(op.sid),
          op.sid,
          op.seq,
          op.at,
          op.direction,
          op.peerType,
          op.peerHost,
          op.peerPort,
          op.fromHost,
          op.fromPort,
          op.toHost,
          op.toPort,
          place === undefined ? slice(arena, op.data) : EMPTY,
          op.size,
          op.sent === null ? null : place === undefined ? slice(arena, op.sent) : EMPTY,
          op.verdict,
          op.reason,
          op.detail,
          place?.at ?? null,
          place?.dataBytes ?? null,
          place?.sentBytes ?? null,
        );
        return;
      case "records":
        this.insertRecords(op.from, op.count, arena);
        return;
      case "event":
        this.event.run(op.sid, this.runId, op.at, op.kind, op.addon, op.hook, op.location, op.code, op.message);
        return;
      case "tags":
        this.tags.run(op.tags, op.sid);
        return;
      case "links":
        this.links.run(op.replayOf, op.servedFrom, op.sid);
        return;
      case "detected":
        this.detected.run(op.protocol, op.sni, op.info, op.sid);
        return;
      case "tls":
        this.tls.run({ ...op.row, session_id: op.sid });
        return;
      case "progress":
        this.progress.run(op.upReceived, op.upSent, op.downReceived, op.downSent, op.captured, op.truncated ? 1 : 0, op.uncaptured ?? 0, op.sid);
        return;
      case "close":
        this.batcher.ended(op.sid);
        this.close.run(
          op.at,
          op.status,
          op.reason,
          op.errno,
          op.upReceived,
          op.upSent,
          op.downReceived,
          op.downSent,
          op.captured,
          op.truncated ? 1 : 0,
          op.uncaptured ?? 0,
          op.sid,
        );
        return;
      default: {
        const never: never = op;
        throw new Error(`unknown operation ${JSON.stringify(never)}`);
      }
    }
  }

  /** Marks the run ended and closes the file (SQLite checkpoints and removes the WAL). */
  stop(at: number): void {
    try {
      this.db.prepare("UPDATE runs SET ended_at = ? WHERE id = ?").run(at, this.runId);
    } finally {
      this.db.close();
      this.payload.close();
    }
  }

  /** Closes the file without marking the run ended (after a write failure). */
  abandon(): void {
    if (this.db.open) {
      this.db.close();
      this.payload.close();
    }
  }
}

const EMPTY = Buffer.alloc(0);
const NO_RECORDS = new Float64Array(0);

function slice(arena: Buffer | undefined, s: Slice): Buffer {
  return bytesAt(arena, s.offset, s.length);
}

function bytesAt(arena: Buffer | undefined, offset: number, length: number): Buffer {
  if (length === 0) return EMPTY;
  return arena!.subarray(offset, offset + length);
}

/** A number slot's value: NaN is null. */
function orNull(value: number): number | null {
  return Number.isNaN(value) ? null : value;
}

/** The first datagram id not yet taken by a row or a batch of the file. */
function nextDatagramId(db: Database.Database): number {
  const rows = db.prepare("SELECT max(id) AS n FROM datagram_rows").get() as { n: number | null };
  const batch = db.prepare("SELECT first_id + count - 1 AS n FROM datagram_batches ORDER BY first_id DESC LIMIT 1").get() as { n: number } | undefined;
  return Math.max(rows.n ?? 0, batch?.n ?? 0) + 1;
}
