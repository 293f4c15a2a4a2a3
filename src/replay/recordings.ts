/**
 * What a server replay can answer from: the recorded sessions of a capture file, indexed by the
 * destination the client asked for.
 *
 * - TCP: every CONNECT that got a success reply and whose payload was kept whole (a session cut
 *   short by `--capture-limit` cannot answer the way the server did). Its turns are read from the
 *   file when a client first needs them, not at start.
 * - UDP: every "up" datagram a client sent through an association, with the "down" datagrams
 *   that came back from where it went, up to the next datagram the client sent there: one
 *   exchange. Read at start (datagrams are small and few next to TCP payload).
 *
 * Keys are the destination as the client wrote it (a name stays a name), lower-cased, and the
 * port. The index is a snapshot: sessions written to the same file later are not recordings, so
 * `run --server-replay socksmith.db` with the default capture file does not answer from itself.
 */
import type { Filter } from "../filter/index.js";
import type { CaptureReader } from "../store/reader.js";
import type { ChunkRow, DatagramRow } from "../store/schema.js";
import { turnsOf, type Turn } from "./turns.js";

export interface TcpRecording {
  /** The session's id in the capture file. */
  readonly id: number;
  /** Whether a server replay has served it (each serves once without `--replay-reuse`). */
  used: boolean;
  /** Who spoke first and the start of what they said, once read (see Recordings.firstTurn). */
  first?: { readonly direction: "up" | "down"; readonly data: Buffer } | null;
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

export function targetKey(host: string, port: number): string {
  return `${host.toLowerCase()}|${port}`;
}

export class Recordings {
  private readonly tcp = new Map<string, TcpRecording[]>();
  private readonly udp = new Map<string, UdpExchange[]>();
  private truncated = 0;

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

  /** A recording's turns, read from the file (each serving session holds its own). */
  turns(recording: TcpRecording): Turn[] {
    return turnsOf(this.reader.chunks(recording.id));
  }

  /**
   * Who spoke first in a recording, and up to 64 KiB of what they said; null when nobody said
   * anything. Read once, without reading the rest of the session.
   */
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
    if (Buffer.compare(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), Buffer.from(data.buffer, data.byteOffset, data.byteLength)) === 0) return c;
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
