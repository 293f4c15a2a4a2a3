/**
 * pcapng export: captured sessions as packets Wireshark dissects as if the client had talked to
 * the target directly.
 *
 * The file is one section (SHB) with one interface (IDB, LINKTYPE_RAW: IPv4 and IPv6 packets,
 * microsecond timestamps), then Enhanced Packet Blocks, session after session, plus Name
 * Resolution Blocks that name the addresses of name-addressed targets. `pcapngBlocks` is a
 * generator: it pulls one row at a time and yields one block at a time, so a capture of any size
 * is exported in constant memory. It does no I/O; the caller writes the buffers.
 *
 * What is synthesised:
 *
 * - Endpoints. The client is client_host:client_port. The server is remote_host:remote_port (the
 *   address the proxy actually connected to) when known, else target_host / requested_host when
 *   it is an IP literal, else a stable synthetic address for the name in the documentation ranges
 *   (192.0.2.0/24, or 2001:db8::/32 when the client is IPv6; see addresses.ts), with the real
 *   port. When the two families differ, both are written as IPv6 (`::ffff:a.b.c.d`).
 * - TCP (CONNECT, and BIND with the peer as the side that opened the connection): a three-way
 *   handshake (SYN at requested_at, SYN-ACK and ACK at replied_at, MSS and window-scale options),
 *   then each chunk as segments of at most `maxSegmentSize` bytes with the sequence and
 *   acknowledgement numbers of both directions (PSH on the last segment of a chunk), then at
 *   closed_at FIN/ACK both ways, or a RST when the session ended in a reset or socket error (or
 *   a hook reset it). Nothing follows the data of a session that is still open or was
 *   interrupted. A pure ACK from the receiver follows when 16 MiB went unacknowledged, so
 *   one-way bulk transfers stay within the advertised window. Initial sequence numbers are
 *   derived from the session id: random-looking, the same on every export.
 * - Sessions that never relayed: a CONNECT that got a failure reply becomes a SYN answered by
 *   RST/ACK (a refused connection, with the reply and errno in a comment); one the client left
 *   before the reply becomes a SYN and the client's RST; one still dialling (open or
 *   interrupted without a reply) a lone SYN. Sessions without a request (protocol or
 *   authentication failures), failed BIND and UDP ASSOCIATE requests produce no packets.
 * - Bytes: with `bytes: "sent"` (the default) each chunk contributes what its destination got:
 *   `sent ?? data`, so dropped chunks vanish and injected bytes appear; with `"received"`, what
 *   its source wrote: `data` (injected bytes do not appear, dropped ones do). When a capture
 *   limit cut a chunk short, its segments still cover the full `size` (sequence numbers stay
 *   true) but carry only the stored bytes: pcapng "snapped" packets whose captured length is
 *   below their original length, TCP checksum 0. (A chunk a hook replaced keeps only the stored
 *   part of its `sent` bytes, whose full length the capture does not record: in "sent" mode such
 *   a chunk counts as long as what was stored.)
 * - UDP: one packet per datagram. 'up': from the wire source (from_host:from_port) to where the
 *   proxy sent it (to_host:to_port), or for a datagram that was not sent, to the peer the client
 *   named (synthetic when a name). 'down': from the remote (from_*) to the client's UDP endpoint
 *   (to_*, or the client's port seen so far when dropped). Dropped datagrams are included in both
 *   modes, with their bytes as received and a comment "socksmith: dropped (reason): detail": the
 *   sender did send them, and the comment says they went no further. Datagrams whose endpoints
 *   cannot be known (no readable SOCKS header, no client port yet) are left out.
 *
 * Comments (opt_comment) name the session on its first packet and say what a hook did to a
 * chunk or datagram, why a connection failed, and where the capture limit cut payload.
 *
 * Packets are in session order, each session's in time order; sessions that overlapped in time
 * are not interleaved (Wireshark sorts by time on request; `reordercap` rewrites the file).
 */
import type { ChunkRow, DatagramRow, SessionRow } from "../model/capture-rows.js";
import { type Family, type IpAddress, canonicalName, formatEndpoint, formatIp, hash32, parseIp, sameFamily, syntheticAddress } from "./addresses.js";
import { enhancedPacketBlock, interfaceDescriptionBlock, nameResolutionBlock, sectionHeaderBlock } from "./blocks.js";
import { type Flow, type Packet, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, maxTcpPayload, maxUdpPayload, tcpPacket, udpPacket } from "./packets.js";

/** One session with its rows, each in `seq` order. */
export interface PcapngSession {
  readonly session: SessionRow;
  /**
   * The session's chunks. Read to the end (or closed) before `datagrams` is touched and before
   * the next session is pulled, so lazy database iterators can be handed in one after another.
   */
  readonly chunks: Iterable<ChunkRow>;
  readonly datagrams: Iterable<DatagramRow>;
}

export interface PcapngOptions {
  /** Which bytes of a changed chunk or datagram: as sent to its destination (default) or as received. */
  readonly bytes?: "sent" | "received";
  /** Largest TCP payload per packet (default 64000; capped so IP packets stay within 65535 bytes). */
  readonly maxSegmentSize?: number;
  /** opt_comment options on packets (default true). */
  readonly comments?: boolean;
  /** Name Resolution Blocks for target names (default true). */
  readonly names?: boolean;
  /** shb_userappl (default "socksmith"). */
  readonly application?: string;
}

export const DEFAULT_MAX_SEGMENT = 64000;
/** Unacknowledged bytes in one direction after which the receiver sends a pure ACK. */
export const ACK_EVERY = 16 * 1024 * 1024;
/** The window-scale shift the handshakes advertise: 65535 << 14 ≈ 1 GiB. */
export const WINDOW_SHIFT = 14;
const WINDOW = 0xffff;
const MAX_COMMENT = 4000;

/** The blocks of a pcapng file for these sessions: SHB, IDB, then packets (and NRBs). */
export function* pcapngBlocks(sessions: Iterable<PcapngSession>, options: PcapngOptions = {}): Generator<Buffer, void, undefined> {
  const exporter = new Exporter(options);
  yield sectionHeaderBlock(options.application ?? "socksmith");
  yield interfaceDescriptionBlock("socksmith", "sessions relayed by socksmith, as if the client had talked to the target directly");
  for (const s of sessions) {
    if (s.session.command === "udp") {
      discard(s.chunks);
      yield* exporter.udpSession(s.session, s.datagrams);
    } else {
      yield* exporter.tcpSession(s.session, s.chunks);
      discard(s.datagrams);
    }
  }
}

/** The initial sequence number of one side of a session's TCP connection. */
export function initialSequence(sessionId: number, side: "client" | "server"): number {
  return hash32(`socksmith:isn:${side}:${sessionId}`, 0x15a);
}

interface Endpoint {
  readonly address: IpAddress;
  readonly port: number;
  /** A name for the address, for comments and the NRB. */
  readonly name?: string;
  readonly synthetic: boolean;
}

/** TCP state of one side. */
interface Side {
  readonly flow: Flow;
  /** Sequence number of the next byte this side sends. */
  next: number;
  /** Bytes this side sent that the other has not acknowledged with a packet. */
  unacked: number;
}

class Exporter {
  private readonly mode: "sent" | "received";
  private readonly segment: number;
  private readonly comments: boolean;
  private readonly names: boolean;
  private readonly named = new Set<string>();
  private ipId = 0;

  constructor(options: PcapngOptions) {
    this.mode = options.bytes ?? "sent";
    const segment = Math.floor(options.maxSegmentSize ?? DEFAULT_MAX_SEGMENT);
    if (!(segment >= 1)) throw new RangeError(`maxSegmentSize must be at least 1, got ${options.maxSegmentSize}`);
    this.segment = segment;
    this.comments = options.comments ?? true;
    this.names = options.names ?? true;
  }

  // --- TCP ---------------------------------------------------------------------------------------

  *tcpSession(session: SessionRow, chunks: Iterable<ChunkRow>): Generator<Buffer, void, undefined> {
    const command = session.command;
    if (command !== "connect" && command !== "bind") return discard(chunks);
    // BIND relays only once the peer connected in; before that there is no peer to show.
    if (command === "bind" && (session.reply !== 0 || session.remote_host === null)) return discard(chunks);
    const ends = this.tcpEndpoints(session);
    if (ends === undefined) return discard(chunks);
    const [client, server] = ends;
    yield* this.nameBlocks(client, server);

    const family = client.address.family;
    const segmentMax = Math.min(this.segment, maxTcpPayload(family));
    const clientFlow: Flow = { src: client.address, dst: server.address, srcPort: client.port, dstPort: server.port };
    const serverFlow: Flow = { src: server.address, dst: client.address, srcPort: server.port, dstPort: client.port };
    const c: Side = { flow: clientFlow, next: initialSequence(session.id, "client"), unacked: 0 };
    const s: Side = { flow: serverFlow, next: initialSequence(session.id, "server"), unacked: 0 };
    const clock = new Clock();
    const pending = this.comments ? [this.sessionComment(session, server)] : [];
    const emit = (side: Side, flags: number, at: number, payload?: Uint8Array, length?: number, tcpOptions?: Uint8Array): Buffer => {
      const other = side === c ? s : c;
      const packet = tcpPacket(
        side.flow,
        { seq: side.next, ack: other.next, flags, window: WINDOW, ipId: this.ipId++, ...(tcpOptions === undefined ? {} : { options: tcpOptions }) },
        payload,
        length,
      );
      if (flags & TCP_ACK) other.unacked = 0;
      return this.packet(clock.at(at), packet, pending.splice(0));
    };

    const dialled = session.requested_at ?? session.opened_at;
    const ended = session.status !== "open" && session.status !== "interrupted";
    if (session.reply !== 0) {
      // Never connected: the SYN the client would have sent, and how it was answered.
      yield emit(c, TCP_SYN, dialled, undefined, undefined, synOptions(segmentMax));
      c.next = (c.next + 1) >>> 0;
      if (session.reply !== null) {
        s.next = 0;
        if (this.comments) pending.push(`socksmith: connection failed: ${failure(session)}`);
        yield emit(s, TCP_RST | TCP_ACK, session.replied_at ?? session.closed_at ?? dialled);
      } else if (ended) {
        if (this.comments) pending.push(`socksmith: the client left before a reply (${session.close_reason ?? "closed"})`);
        yield emit(c, TCP_RST, session.closed_at ?? dialled);
      }
      return discard(chunks);
    }

    // The three-way handshake; for BIND the peer connected to the client.
    const [opener, answerer] = command === "bind" ? [s, c] : [c, s];
    const connected = session.replied_at ?? dialled;
    yield emit(opener, TCP_SYN, dialled, undefined, undefined, synOptions(segmentMax));
    opener.next = (opener.next + 1) >>> 0;
    yield emit(answerer, TCP_SYN | TCP_ACK, connected, undefined, undefined, synOptions(segmentMax));
    answerer.next = (answerer.next + 1) >>> 0;
    yield emit(opener, TCP_ACK, connected);

    let resetBy: Side | undefined;
    for (const chunk of chunks) {
      const from = chunk.direction === "up" ? c : s;
      const to = from === c ? s : c;
      const { bytes, length } = this.chunkBytes(chunk);
      // A hook's reset ends the session: its destination got a RST instead of the bytes.
      if (chunk.verdict === "reset") resetBy = from;
      if (this.comments) {
        const note = chunkComment(chunk, this.mode, bytes, length);
        if (note !== undefined && length > 0) pending.push(note);
      }
      for (let offset = 0; offset < length; offset += segmentMax) {
        const size = Math.min(segmentMax, length - offset);
        const last = offset + size >= length;
        const carried = bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + size, bytes.length));
        yield emit(from, last ? TCP_PSH | TCP_ACK : TCP_ACK, chunk.at, carried, size);
        from.next = (from.next + size) >>> 0;
        from.unacked += size;
      }
      if (from.unacked >= ACK_EVERY) yield emit(to, TCP_ACK, chunk.at);
    }

    if (!ended || session.closed_at === null) return;
    const closed = session.closed_at;
    const reason = session.close_reason;
    const resetter =
      reason === "client-reset" || reason === "client-error"
        ? c
        : reason === "target-reset" || reason === "target-error"
          ? s
          : reason === "closed-by-hook"
            ? resetBy
            : undefined;
    if (resetter !== undefined) {
      if (this.comments) pending.push(`socksmith: ${reason}${session.close_errno === null ? "" : ` (${session.close_errno})`}`);
      yield emit(resetter, TCP_RST | TCP_ACK, closed);
      return;
    }
    if (this.comments && reason !== null && reason !== "completed") pending.push(`socksmith: closed (${reason})`);
    yield emit(c, TCP_FIN | TCP_ACK, closed);
    c.next = (c.next + 1) >>> 0;
    yield emit(s, TCP_FIN | TCP_ACK, closed);
    s.next = (s.next + 1) >>> 0;
    yield emit(c, TCP_ACK, closed);
  }

  private chunkBytes(chunk: ChunkRow): { bytes: Uint8Array; length: number } {
    if (this.mode === "received" || chunk.sent === null) return { bytes: chunk.data, length: Math.max(chunk.size, chunk.data.length) };
    return { bytes: chunk.sent, length: chunk.sent.length };
  }

  private tcpEndpoints(session: SessionRow): [Endpoint, Endpoint] | undefined {
    const port = session.remote_port ?? session.target_port ?? session.requested_port;
    // The host the proxy dialled (after redirects): its name, when it was one, names the address.
    const dialled = session.command === "bind" ? session.remote_host : (session.target_host ?? session.requested_host);
    if (port === null || dialled === null || dialled === "") return undefined;
    const label = parseIp(dialled) === undefined ? canonicalName(dialled) : undefined;
    const serverIp = parseIp(session.remote_host) ?? parseIp(dialled);
    return this.pair(
      { ip: parseIp(session.client_host), name: session.client_host, port: session.client_port },
      { ip: serverIp, name: dialled, port, ...(label === undefined ? {} : { label }) },
    );
  }

  /**
   * Two endpoints in one family. A side without an IP literal gets a synthetic address in the
   * other side's family (IPv4 when neither has one).
   */
  private pair(a: RawEndpoint, b: RawEndpoint): [Endpoint, Endpoint] {
    const family: Family = a.ip?.family ?? b.ip?.family ?? 4;
    const resolve = (e: RawEndpoint, fallback: Family): Endpoint => {
      const name = e.label === undefined ? {} : { name: e.label };
      if (e.ip !== undefined) return { address: e.ip, port: e.port, synthetic: false, ...name };
      return { address: syntheticAddress(e.name, fallback), port: e.port, synthetic: true, ...name };
    };
    const first = resolve(a, b.ip?.family ?? family);
    const second = resolve(b, a.ip?.family ?? family);
    const [x, y] = sameFamily(first.address, second.address);
    return [
      { ...first, address: x },
      { ...second, address: y },
    ];
  }

  // --- UDP ---------------------------------------------------------------------------------------

  *udpSession(session: SessionRow, datagrams: Iterable<DatagramRow>): Generator<Buffer, void, undefined> {
    const clock = new Clock();
    const pending = this.comments
      ? [
          `socksmith session ${session.id} (run ${session.run_id} #${session.engine_id}): UDP ASSOCIATE from ${formatEndpoint(session.client_host, session.client_port)}`,
        ]
      : [];
    let clientPort: number | undefined;
    for (const d of datagrams) {
      let src: RawEndpoint;
      let dst: RawEndpoint;
      if (d.direction === "up") {
        if (d.from_host === session.client_host && d.verdict === "relayed") clientPort = d.from_port;
        src = { ip: parseIp(d.from_host), name: d.from_host, port: d.from_port };
        const label = d.peer_host !== null && d.peer_host !== "" && parseIp(d.peer_host) === undefined ? canonicalName(d.peer_host) : undefined;
        if (d.to_host !== null && d.to_port !== null)
          dst = { ip: parseIp(d.to_host), name: d.to_host, port: d.to_port, ...(label === undefined ? {} : { label }) };
        else if (d.peer_host !== null && d.peer_port !== null)
          dst = { ip: parseIp(d.peer_host), name: d.peer_host, port: d.peer_port, ...(label === undefined ? {} : { label }) };
        else continue;
      } else {
        if (d.to_host !== null && d.to_port !== null) clientPort = d.to_port;
        if (clientPort === undefined) continue;
        src = { ip: parseIp(d.from_host), name: d.from_host, port: d.from_port };
        dst =
          d.to_host !== null && d.to_port !== null
            ? { ip: parseIp(d.to_host), name: d.to_host, port: d.to_port }
            : { ip: parseIp(session.client_host), name: session.client_host, port: clientPort };
      }
      const [a, b] = this.pair(src, dst);
      yield* this.nameBlocks(a, b);
      const flow: Flow = { src: a.address, dst: b.address, srcPort: a.port, dstPort: b.port };
      const dropped = d.verdict === "dropped";
      let bytes: Uint8Array = d.data;
      let length = Math.max(d.size, d.data.length);
      if (!dropped && this.mode === "sent" && d.sent !== null) {
        bytes = d.sent;
        length = d.sent.length;
      }
      const notes = pending.splice(0);
      if (this.comments) {
        if (dropped) notes.push(`socksmith: dropped (${d.reason ?? "unknown"})${d.detail === null ? "" : `: ${d.detail}`}`);
        else if (d.sent !== null) notes.push(`socksmith: replaced by a hook (${d.data.length} bytes received, ${d.sent.length} sent)`);
        if (d.direction === "up" && d.peer_host !== null && d.to_host !== null && d.peer_port !== null) {
          const peerIp = parseIp(d.peer_host);
          if (peerIp === undefined) notes.push(`socksmith: the client sent to ${formatEndpoint(d.peer_host, d.peer_port)}`);
          else if (formatIp(peerIp) !== formatIp(parseIp(d.to_host) ?? peerIp) || d.peer_port !== d.to_port)
            notes.push(`socksmith: the client sent to ${formatEndpoint(d.peer_host, d.peer_port)}; redirected`);
        }
        if (bytes.length < length) notes.push(`socksmith: ${bytes.length} of ${length} bytes stored (capture limit)`);
      }
      const max = maxUdpPayload(a.address.family);
      if (length > max) {
        if (this.comments) notes.push(`socksmith: ${length} bytes do not fit one IP packet; cut to ${max}`);
        length = max;
        bytes = bytes.subarray(0, Math.min(bytes.length, max));
      }
      yield this.packet(clock.at(d.at), udpPacket(flow, this.ipId++, bytes, length), notes);
    }
  }

  // --- Shared --------------------------------------------------------------------------------------

  private packet(at: number, packet: Packet, comments: readonly string[]): Buffer {
    return enhancedPacketBlock(Math.round(at * 1000), packet, comments.map(clip));
  }

  /** An NRB for endpoints with names not announced yet. */
  private *nameBlocks(...endpoints: Endpoint[]): Generator<Buffer, void, undefined> {
    if (!this.names) return;
    const entries: [IpAddress, string][] = [];
    for (const e of endpoints) {
      if (e.name === undefined || e.name === "" || e.name.length > 255) continue;
      const key = `${formatIp(e.address)} ${e.name}`;
      if (this.named.has(key)) continue;
      this.named.add(key);
      entries.push([e.address, e.name]);
    }
    if (entries.length > 0) yield nameResolutionBlock(entries);
  }

  private sessionComment(session: SessionRow, server: Endpoint): string {
    const requested = session.requested_host === null ? "?" : formatEndpoint(session.requested_host, session.requested_port);
    const target =
      session.target_host !== null && (session.target_host !== session.requested_host || session.target_port !== session.requested_port)
        ? ` redirected to ${formatEndpoint(session.target_host, session.target_port)}`
        : "";
    const where = server.synthetic
      ? `synthetic ${formatIp(server.address)}`
      : session.remote_host === null
        ? formatIp(server.address)
        : formatEndpoint(session.remote_host, session.remote_port);
    const verb = session.command === "bind" ? "BIND" : "CONNECT";
    return `socksmith session ${session.id} (run ${session.run_id} #${session.engine_id}): ${verb} ${formatEndpoint(session.client_host, session.client_port)} → ${requested}${target} (${where})`;
  }
}

/** An endpoint before it has an address: an IP literal, or a name for a synthetic one. */
interface RawEndpoint {
  readonly ip: IpAddress | undefined;
  readonly name: string;
  readonly port: number;
  /** The host name to announce for the address. */
  readonly label?: string;
}

/** Timestamps in milliseconds, never going back within a session. */
class Clock {
  private last = Number.NEGATIVE_INFINITY;
  at(ms: number): number {
    if (ms > this.last) this.last = ms;
    return this.last;
  }
}

function synOptions(mss: number): Uint8Array {
  // MSS (kind 2), NOP, window scale (kind 3).
  return Uint8Array.of(2, 4, (mss >>> 8) & 0xff, mss & 0xff, 1, 3, 3, WINDOW_SHIFT);
}

function failure(session: SessionRow): string {
  const parts = [`reply ${session.reply}`];
  if (session.reply_code !== null) parts.push(session.reply_code);
  if (session.errno !== null) parts.push(session.errno);
  return parts.join(", ");
}

function chunkComment(chunk: ChunkRow, mode: "sent" | "received", bytes: Uint8Array, length: number): string | undefined {
  const notes: string[] = [];
  switch (chunk.verdict as string | null) {
    case "replace":
      notes.push(`replaced by a hook (${chunk.size} bytes received, ${chunk.sent?.length ?? 0} sent)`);
      break;
    case "inject":
      notes.push("injected by a hook");
      break;
    case "drop":
      if (mode === "received") notes.push("dropped by a hook, not delivered");
      break;
    case "close":
    case "reset":
      if (mode === "received") notes.push(`the hook answered with ${chunk.verdict}; not delivered`);
      break;
  }
  if (bytes.length < length) notes.push(`${bytes.length} of ${length} bytes stored (capture limit)`);
  return notes.length === 0 ? undefined : `socksmith: ${notes.join("; ")}`;
}

function clip(comment: string): string {
  return comment.length <= MAX_COMMENT ? comment : `${comment.slice(0, MAX_COMMENT - 1)}…`;
}

/** Closes an iterable the export does not need (a database iterator must not stay open). */
function discard(rows: Iterable<unknown>): void {
  const iterator = rows[Symbol.iterator]();
  iterator.return?.();
}
