/**
 * Applies the recorder's batches to the capture file: one transaction per batch, statements
 * prepared once. Runs in the capture worker (writer-worker.ts); tests may drive it directly.
 */
import type Database from "better-sqlite3";
import type { Batch, Operation, Slice } from "./batch.js";
import { openCapture } from "./database.js";

type Statement = Database.Statement;

/**
 * WAL size (estimated) at which a burst is interrupted for a checkpoint; bounds disk use and crash
 * recovery. A burst smaller than this is written once, at WAL speed, and copied into the database
 * when traffic pauses. At 256 MiB, copying in mid-burst cut the bench's capture-on throughput to
 * about a third (download) and two thirds (upload).
 */
export const CHECKPOINT_BYTES = 1024 * 1024 * 1024;

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
  private readonly applyAll: (batch: Batch) => void;
  /** Bytes written to the WAL since the last checkpoint (an estimate). */
  private unchecked = 0;

  constructor(
    file: string,
    private readonly runId: number,
    options: { readonly maxPageCount?: number } = {},
  ) {
    this.db = openCapture(file);
    // Tests bound the file to make "disk full" happen on demand.
    if (options.maxPageCount !== undefined) this.db.pragma(`max_page_count = ${options.maxPageCount}`);
    const db = this.db;
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
    this.chunk = db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size, sent, verdict) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    this.datagram = db.prepare(
      `INSERT INTO datagrams (session_id, seq, at, direction, peer_type, peer_host, peer_port, from_host, from_port, to_host, to_port, data, size, sent, verdict, reason, detail)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
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
    this.applyAll = db.transaction((batch: Batch) => {
      const arena = batch.arena === undefined ? undefined : Buffer.from(batch.arena);
      for (const op of batch.ops) this.apply(op, arena);
    });
  }

  write(batch: Batch): void {
    this.applyAll(batch);
    // Payload plus a little for the rows, as an estimate of what the WAL grew by.
    this.unchecked += batch.bytes + batch.ops.length * 64;
    if (this.unchecked >= CHECKPOINT_BYTES) this.checkpoint();
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

  private apply(op: Operation, arena: Buffer | undefined): void {
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
        this.chunk.run(op.sid, op.seq, op.at, op.direction, slice(arena, op.data), op.size, op.sent === null ? null : slice(arena, op.sent), op.verdict);
        return;
      case "datagram":
        this.datagram.run(
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
          slice(arena, op.data),
          op.size,
          op.sent === null ? null : slice(arena, op.sent),
          op.verdict,
          op.reason,
          op.detail,
        );
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
    }
  }

  /** Closes the file without marking the run ended (after a write failure). */
  abandon(): void {
    if (this.db.open) this.db.close();
  }
}

const EMPTY = Buffer.alloc(0);

function slice(arena: Buffer | undefined, s: Slice): Buffer {
  if (s.length === 0) return EMPTY;
  return arena!.subarray(s.offset, s.offset + s.length);
}
