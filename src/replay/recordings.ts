/**
 * What a server replay can answer from: the recorded sessions of a capture file, indexed by the
 * destination the client asked for.
 *
 * - TCP: every CONNECT that got a success reply and whose payload was kept whole (a session cut
 *   short by `--capture-limit` cannot answer the way the server did). A serving session reads its
 *   recording through a RecordingCursor, a page at a time (at most PAGE_ROWS rows and about
 *   PAGE_BYTES of server bytes; client bytes are read as lengths only), so what one served
 *   client holds is bounded whatever the recording's size, and no read is unbounded.
 * - UDP: every "up" datagram a client sent through an association, with the "down" datagrams
 *   that came back from where it went, up to the next datagram the client sent there: one
 *   exchange. Read at start (datagrams are small and few next to TCP payload).
 *
 * Keys are the destination as the client wrote it (a name stays a name), lower-cased, and the
 * port. The index is a snapshot: sessions written to the same file later are not recordings, so
 * `run --server-replay socksmith.db` with the default capture file does not answer from itself.
 */
import type Database from "better-sqlite3";
import type { Filter } from "../filter/index.js";
import { openCapture } from "../store/database.js";
import type { CaptureReader } from "../store/reader.js";
import type { ChunkRow, DatagramRow } from "../store/schema.js";
import { turnsOf } from "./turns.js";

export interface TcpRecording {
  /** The session's id in the capture file. */
  readonly id: number;
  /** Whether a server replay has served it (each serves once without `--replay-reuse`). */
  used: boolean;
  /** Who spoke first and the start of what they said, once read (see Recordings.firstTurn). */
  first?: { readonly direction: "up" | "down"; readonly data: Buffer } | null;
  /** Its TLS facts once read (see Recordings.tlsOf); null: none. */
  tls?: { readonly intercepted: boolean; readonly sni?: string; readonly alpn?: string } | null;
}

/** The most of a first turn kept for choosing between recordings. */
const FIRST_TURN_BYTES = 64 * 1024;

export interface UdpReply {
  readonly peer: { readonly host: string; readonly port: number };
  readonly data: Buffer;
}

export interface UdpExchange {
  /** The UDP ASSOCIATE session that recorded it. */
  readonly session: number;
  readonly request: Buffer;
  readonly replies: readonly UdpReply[];
  used: boolean;
}

export interface RecordingCounts {
  readonly tcp: number;
  readonly udp: number;
  readonly targets: number;
  /** CONNECT sessions left out because their payload was truncated. */
  readonly truncated: number;
}

/** Server bytes one page of a recording holds (it may end one chunk past it). */
export const PAGE_BYTES = 1024 * 1024;
/** Rows one page holds at most (client rows are lengths only). */
export const PAGE_ROWS = 1024;

/**
 * One piece of a recorded conversation, in order: what the client sent (its length only) or
 * what the server sent (its bytes). Pieces are chunks with bytes, as turns.ts counts them:
 * "up" = the bytes received from the client; "down" = received from the target, or injected.
 */
export type Piece = { readonly direction: "up"; readonly size: number } | { readonly direction: "down"; readonly size: number; readonly bytes: Buffer };

/** What paging has read, for tests and figures. */
export interface PagingStats {
  pages: number;
  /** Server bytes in the largest page read. */
  maxPageBytes: number;
}

/**
 * Reads one recording's pieces forward, a page at a time, on the Recordings' own connection:
 * each page is one bounded query (`id > last ORDER BY id LIMIT`, from an index), finished before
 * it returns, so cursors of many served clients interleave freely.
 */
export class RecordingCursor {
  private page: Piece[] = [];
  private at = 0;
  private after = 0;
  private ended = false;

  constructor(
    private readonly statement: Database.Statement,
    private readonly session: number,
    private readonly stats: PagingStats,
    /** Reads a row kept in the capture's payload file. */
    private readonly external: Pick<CaptureReader, "externalPayload">,
  ) {}

  /** The next piece, without moving past it; undefined at the end of the recording. */
  peek(): Piece | undefined {
    while (this.at >= this.page.length && !this.ended) this.read();
    return this.page[this.at];
  }

  /** Moves past the piece `peek()` returned. */
  next(): void {
    this.at++;
  }

  private read(): void {
    const page: Piece[] = [];
    let bytes = 0;
    let rows = 0;
    // A row's bytes: length(data) reads no payload; `sent` only for an injected "down" row
    // (its received data is empty), `data` only for "down" rows.
    for (const row of this.statement.iterate(this.session, this.after) as IterableIterator<PieceRow>) {
      this.after = row.id;
      rows++;
      const down = row.direction === "down" && row.payload_at !== null ? this.externalBytes(row) : row.bytes;
      if (row.direction === "up") {
        if (row.length > 0) page.push({ direction: "up", size: row.length });
      } else if (down !== null && down.length > 0) {
        page.push({ direction: "down", size: down.length, bytes: down });
        bytes += down.length;
      }
      if (rows >= PAGE_ROWS || bytes >= PAGE_BYTES) break;
    }
    if (rows === 0) this.ended = true;
    this.page = page;
    this.at = 0;
    this.stats.pages++;
    this.stats.maxPageBytes = Math.max(this.stats.maxPageBytes, bytes);
  }

  /** A "down" row's bytes from the payload file: what it received, or what it sent when it received none (an injection). */
  private externalBytes(row: PieceRow): Buffer | null {
    const where = { at: row.payload_at!, dataBytes: row.payload_data ?? 0, sentBytes: row.payload_sent };
    if (where.dataBytes > 0) return this.external.externalPayload({ ...where, sentBytes: null }).data;
    return this.external.externalPayload(where).sent;
  }
}

interface PieceRow {
  readonly id: number;
  readonly direction: "up" | "down";
  readonly length: number;
  readonly bytes: Buffer | null;
  readonly payload_at: number | null;
  readonly payload_data: number | null;
  readonly payload_sent: number | null;
}

// A row in the payload file (payload_at set) has its bytes read from there, not here.
const PIECES_SQL = `SELECT id, direction, CASE WHEN payload_at IS NULL THEN length(data) ELSE payload_data END AS length,
  CASE WHEN direction = 'down' AND payload_at IS NULL THEN (CASE WHEN length(data) = 0 THEN sent ELSE data END) END AS bytes,
  payload_at, payload_data, payload_sent
  FROM chunks WHERE session_id = ? AND id > ? ORDER BY id`;

export function targetKey(host: string, port: number): string {
  return `${host.toLowerCase()}|${port}`;
}

export class Recordings {
  private readonly tcp = new Map<string, TcpRecording[]>();
  private readonly udp = new Map<string, UdpExchange[]>();
  private truncated = 0;
  /** The connection cursors page through (opened when a client is first served). */
  private db: Database.Database | undefined;
  private pieces: Database.Statement | undefined;
  readonly paging: PagingStats = { pages: 0, maxPageBytes: 0 };

  /** `filter` (the filter language) narrows which sessions may answer. */
  constructor(
    private readonly reader: CaptureReader,
    filter?: Filter,
  ) {
    // One statement at a time: the connection cannot run a query while another one iterates.
    const associations: number[] = [];
    for (const s of reader.allSessions(filter === undefined ? {} : { filter })) {
      if (s.command === "udp") associations.push(s.id);
      if (s.command !== "connect" || s.reply !== 0 || s.requested_host === null || s.requested_port === null) continue;
      if (s.truncated === 1) {
        this.truncated++;
        continue;
      }
      push(this.tcp, targetKey(s.requested_host, s.requested_port), { id: s.id, used: false });
    }
    for (const id of associations) this.indexDatagrams(id, reader.datagrams(id));
  }

  get counts(): RecordingCounts {
    let tcp = 0;
    let udp = 0;
    for (const list of this.tcp.values()) tcp += list.length;
    for (const list of this.udp.values()) udp += list.length;
    return { tcp, udp, targets: this.tcp.size, truncated: this.truncated };
  }

  /** The TCP recordings for a destination that may still serve (all of them with `reuse`). */
  tcpFor(host: string, port: number, reuse: boolean): TcpRecording[] {
    return (this.tcp.get(targetKey(host, port)) ?? []).filter((r) => reuse || !r.used);
  }

  /** A cursor over a recording's pieces (each serving session holds its own). */
  cursor(recording: TcpRecording): RecordingCursor {
    if (this.pieces === undefined) {
      this.db = openCapture(this.reader.file, { readonly: true });
      this.pieces = this.db.prepare(PIECES_SQL);
    }
    return new RecordingCursor(this.pieces, recording.id, this.paging, this.reader);
  }

  /** Closes the cursors' connection (the reader is the caller's). */
  close(): void {
    this.db?.close();
    this.db = undefined;
    this.pieces = undefined;
  }

  /**
   * Who spoke first in a recording, and up to 64 KiB of what they said; null when nobody said
   * anything. Read once, without reading the rest of the session.
   */
  /**
   * How the recording's tunnel began when `run --tls` saw a ClientHello: whether it was
   * intercepted (its chunks are plaintext) and the ALPN its client negotiated; undefined when it
   * has no tls row (not TLS, or recorded without --tls). Read once per recording.
   */
  tlsOf(recording: TcpRecording): { readonly intercepted: boolean; readonly sni?: string; readonly alpn?: string } | undefined {
    if (recording.tls === undefined) {
      const row = this.reader.tls(recording.id);
      recording.tls =
        row === undefined
          ? null
          : {
              intercepted: row.intercepted === 1 && row.failure_code === null,
              ...(row.sni === null ? {} : { sni: row.sni }),
              ...(row.client_alpn === null ? {} : { alpn: row.client_alpn }),
            };
    }
    return recording.tls ?? undefined;
  }

  firstTurn(recording: TcpRecording): { readonly direction: "up" | "down"; readonly data: Buffer } | null {
    if (recording.first !== undefined) return recording.first;
    const [turn] = turnsOf(this.chunksUntil(recording.id, FIRST_TURN_BYTES));
    recording.first = turn === undefined ? null : { direction: turn.direction, data: turn.data.subarray(0, FIRST_TURN_BYTES) };
    return recording.first;
  }

  /** A session's chunks in order, stopping once `max` bytes have been read. */
  private *chunksUntil(id: number, max: number): Generator<ChunkRow> {
    let size = 0;
    for (const chunk of this.reader.chunks(id)) {
      yield chunk;
      size += chunk.data.length;
      if (size >= max) return;
    }
  }

  /**
   * The exchange that answers a datagram to `host:port`: one whose request has the same bytes,
   * else the most alike (see `likeness`), oldest first on a tie. undefined when none is left.
   */
  udpFor(host: string, port: number, data: Uint8Array, reuse: boolean): UdpExchange | undefined {
    const candidates = (this.udp.get(targetKey(host, port)) ?? []).filter((e) => reuse || !e.used);
    return mostAlike(candidates, data, (e) => e.request);
  }

  private indexDatagrams(session: number, rows: Iterable<DatagramRow>): void {
    // The open exchange of each resolved destination: replies come from there.
    const open = new Map<string, { request: Buffer; replies: UdpReply[]; key: string }>();
    const done: { request: Buffer; replies: UdpReply[]; key: string }[] = [];
    for (const d of rows) {
      if (d.verdict === "dropped") continue;
      if (d.direction === "up") {
        if (d.peer_host === null || d.peer_port === null || d.to_host === null || d.to_port === null) continue;
        const exchange = { request: d.data, replies: [] as UdpReply[], key: targetKey(d.peer_host, d.peer_port) };
        done.push(exchange);
        open.set(`${d.to_host}|${d.to_port}`, exchange);
      } else {
        const exchange = open.get(`${d.from_host}|${d.from_port}`);
        exchange?.replies.push({ peer: { host: d.peer_host ?? d.from_host, port: d.peer_port ?? d.from_port }, data: d.sent ?? d.data });
      }
    }
    for (const e of done) push(this.udp, e.key, { session, request: e.request, replies: e.replies, used: false });
  }
}

/**
 * How alike two messages are: the bytes equal at the same offset, less the difference in
 * length. A changed ID or counter costs a few bytes; a different request costs most of them.
 */
export function likeness(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  let same = 0;
  for (let i = 0; i < n; i++) if (a[i] === b[i]) same++;
  return same - Math.abs(a.length - b.length);
}

/** The candidate whose bytes are most like `data`; the first (oldest) on a tie. */
export function mostAlike<T>(candidates: readonly T[], data: Uint8Array, bytesOf: (candidate: T) => Uint8Array): T | undefined {
  let best: T | undefined;
  let bestScore = -Infinity;
  for (const c of candidates) {
    const bytes = bytesOf(c);
    if (Buffer.compare(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), Buffer.from(data.buffer, data.byteOffset, data.byteLength)) === 0)
      return c;
    const score = likeness(bytes, data);
    if (score > bestScore) {
      best = c;
      bestScore = score;
    }
  }
  return best;
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
