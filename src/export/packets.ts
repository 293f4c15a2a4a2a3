/**
 * Raw IP packets for the pcapng export: an IPv4 (RFC 791) or IPv6 (RFC 8200) header followed by
 * a TCP (RFC 9293) or UDP (RFC 768) header, with correct checksums.
 *
 * A packet is returned as its headers plus the payload bytes it carries, so the caller copies
 * the payload once, straight into the block. When the payload is known to be longer than the
 * bytes at hand (a capture limit cut them), `length` says how long it really was: the headers
 * describe the full packet, only `payload` is included (a "snapped" packet, as tcpdump -s makes),
 * and the transport checksum, which cannot be computed, is left 0 (UDP over IPv6, where 0 is
 * illegal: 0xffff).
 */
import type { Family, IpAddress } from "./addresses.js";

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
const TCP_HEADER = 20;
const UDP_HEADER = 8;
const TTL = 64;

/** The largest TCP payload that keeps the IP packet within 65535 bytes (no options). */
export function maxTcpPayload(family: Family): number {
  return family === 4 ? 0xffff - IPV4_HEADER - TCP_HEADER : 0xffff - TCP_HEADER;
}

/** The largest UDP payload one IP packet carries. */
export function maxUdpPayload(family: Family): number {
  return family === 4 ? 0xffff - IPV4_HEADER - UDP_HEADER : 0xffff - UDP_HEADER;
}

/** One direction of a conversation: both addresses in the same family. */
export interface Flow {
  readonly src: IpAddress;
  readonly dst: IpAddress;
  readonly srcPort: number;
  readonly dstPort: number;
}

export interface Packet {
  /** IP + transport headers. */
  readonly head: Buffer;
  /** The payload bytes included (may be shorter than the payload, see the module comment). */
  readonly payload: Uint8Array;
  /** The packet's real length: head + the full payload. */
  readonly length: number;
}

export interface TcpFields {
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly window: number;
  /** TCP options, a multiple of 4 bytes. */
  readonly options?: Uint8Array;
  /** IPv4 identification. */
  readonly ipId: number;
}

export function tcpPacket(flow: Flow, fields: TcpFields, payload: Uint8Array = EMPTY, length: number = payload.length): Packet {
  const options = fields.options ?? EMPTY;
  const tcpHeader = TCP_HEADER + options.length;
  const segment = tcpHeader + length;
  const ipHeader = flow.src.family === 4 ? IPV4_HEADER : IPV6_HEADER;
  const head = Buffer.alloc(ipHeader + tcpHeader);
  writeIpHeader(head, flow, PROTO_TCP, segment, fields.ipId, true);
  const t = ipHeader;
  head.writeUInt16BE(flow.srcPort, t);
  head.writeUInt16BE(flow.dstPort, t + 2);
  head.writeUInt32BE(fields.seq >>> 0, t + 4);
  head.writeUInt32BE(fields.flags & TCP_ACK ? fields.ack >>> 0 : 0, t + 8);
  head[t + 12] = (tcpHeader / 4) << 4;
  head[t + 13] = fields.flags;
  head.writeUInt16BE(fields.window, t + 14);
  head.set(options, t + TCP_HEADER);
  if (payload.length === length) {
    const sum = pseudoHeaderSum(flow, PROTO_TCP, segment) + sum16(head, t, head.length) + sum16(payload, 0, payload.length);
    head.writeUInt16BE(finish(sum), t + 16);
  }
  return { head, payload, length: head.length + length };
}

export function udpPacket(flow: Flow, ipId: number, payload: Uint8Array, length: number = payload.length): Packet {
  const datagram = UDP_HEADER + length;
  const ipHeader = flow.src.family === 4 ? IPV4_HEADER : IPV6_HEADER;
  const head = Buffer.alloc(ipHeader + UDP_HEADER);
  writeIpHeader(head, flow, PROTO_UDP, datagram, ipId, false);
  const u = ipHeader;
  head.writeUInt16BE(flow.srcPort, u);
  head.writeUInt16BE(flow.dstPort, u + 2);
  head.writeUInt16BE(datagram, u + 4);
  if (payload.length === length) {
    const sum = pseudoHeaderSum(flow, PROTO_UDP, datagram) + sum16(head, u, head.length) + sum16(payload, 0, payload.length);
    // 0 means "no checksum" in UDP; a computed 0 is sent as all ones (RFC 768).
    head.writeUInt16BE(finish(sum) || 0xffff, u + 6);
  } else if (flow.src.family === 6) {
    // IPv6 forbids a zero UDP checksum; a snapped packet's cannot be verified anyway.
    head.writeUInt16BE(0xffff, u + 6);
  }
  return { head, payload, length: head.length + length };
}

function writeIpHeader(out: Buffer, flow: Flow, protocol: number, transportLength: number, id: number, dontFragment: boolean): void {
  if (flow.src.family === 4) {
    out[0] = 0x45;
    out[1] = 0;
    out.writeUInt16BE(IPV4_HEADER + transportLength, 2);
    out.writeUInt16BE(id & 0xffff, 4);
    out.writeUInt16BE(dontFragment ? 0x4000 : 0, 6);
    out[8] = TTL;
    out[9] = protocol;
    out.set(flow.src.bytes, 12);
    out.set(flow.dst.bytes, 16);
    out.writeUInt16BE(finish(sum16(out, 0, IPV4_HEADER)), 10);
  } else {
    out.writeUInt32BE(0x60000000, 0);
    out.writeUInt16BE(transportLength, 4);
    out[6] = protocol;
    out[7] = TTL;
    out.set(flow.src.bytes, 8);
    out.set(flow.dst.bytes, 24);
  }
}

/** The sum of the pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1). */
function pseudoHeaderSum(flow: Flow, protocol: number, length: number): number {
  // Both forms sum to: addresses + protocol + length (IPv6's 32-bit length is < 65536 here).
  return sum16(flow.src.bytes, 0, flow.src.bytes.length) + sum16(flow.dst.bytes, 0, flow.dst.bytes.length) + protocol + length;
}

/**
 * The unfolded sum of big-endian 16-bit words of bytes[start..end); an odd last byte is padded
 * with zero. Only the last piece of a checksummed range may have odd length.
 */
export function sum16(bytes: Uint8Array, start: number, end: number): number {
  let sum = 0;
  let i = start;
  const even = end - ((end - start) & 1);
  // Partial sums stay far below 2^53; fold every 2^16 words anyway to keep them small integers.
  while (i < even) {
    const stop = Math.min(even, i + 0x20000);
    let part = 0;
    for (; i < stop; i += 2) part += (bytes[i]! << 8) | bytes[i + 1]!;
    sum += part;
  }
  if (even !== end) sum += bytes[end - 1]! << 8;
  return sum;
}

/** Folds a sum to 16 bits and complements it. */
export function finish(sum: number): number {
  let s = sum;
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

const EMPTY = new Uint8Array(0);
