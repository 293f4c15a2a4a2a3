/**
 * pcapng blocks (draft-ietf-opsawg-pcapng): Section Header, Interface Description, Enhanced
 * Packet and Name Resolution blocks, little-endian, each padded to 32 bits with its total
 * length at both ends.
 */
import type { IpAddress } from "./addresses.js";
import type { Packet } from "./packets.js";

export const BLOCK_SHB = 0x0a0d0d0a;
export const BLOCK_IDB = 0x00000001;
export const BLOCK_NRB = 0x00000004;
export const BLOCK_EPB = 0x00000006;
export const BYTE_ORDER_MAGIC = 0x1a2b3c4d;
/** LINKTYPE_RAW: each packet starts with an IPv4 or IPv6 header, told apart by its version. */
export const LINKTYPE_RAW = 101;
export const SNAPLEN = 262144;

const OPT_ENDOFOPT = 0;
const OPT_COMMENT = 1;
const SHB_USERAPPL = 4;
const IF_NAME = 2;
const IF_DESCRIPTION = 3;
const IF_TSRESOL = 9;
const NRB_RECORD_END = 0;
const NRB_RECORD_IPV4 = 1;
const NRB_RECORD_IPV6 = 2;

type Option = readonly [code: number, value: Uint8Array];

export function sectionHeaderBlock(application: string): Buffer {
  const body = Buffer.alloc(16);
  body.writeUInt32LE(BYTE_ORDER_MAGIC, 0);
  body.writeUInt16LE(1, 4);
  body.writeUInt16LE(0, 6);
  // Section length: -1, unknown (the file is written as a stream).
  body.writeBigInt64LE(-1n, 8);
  return block(BLOCK_SHB, body, [[SHB_USERAPPL, Buffer.from(application, "utf8")]]);
}

export function interfaceDescriptionBlock(name: string, description: string): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16LE(LINKTYPE_RAW, 0);
  body.writeUInt16LE(0, 2);
  body.writeUInt32LE(SNAPLEN, 4);
  return block(BLOCK_IDB, body, [
    [IF_NAME, Buffer.from(name, "utf8")],
    [IF_DESCRIPTION, Buffer.from(description, "utf8")],
    // 10^-6 s, the default, spelled out.
    [IF_TSRESOL, Uint8Array.of(6)],
  ]);
}

/** Name Resolution Block with one record per (address, name). */
export function nameResolutionBlock(entries: readonly (readonly [IpAddress, string])[]): Buffer {
  const records: Buffer[] = [];
  for (const [address, name] of entries) {
    const value = Buffer.concat([address.bytes, Buffer.from(`${name}\0`, "utf8")]);
    records.push(tlv(address.family === 4 ? NRB_RECORD_IPV4 : NRB_RECORD_IPV6, value));
  }
  records.push(tlv(NRB_RECORD_END, new Uint8Array(0)));
  return block(BLOCK_NRB, Buffer.concat(records), []);
}

/**
 * Enhanced Packet Block on interface 0. `micros` is the timestamp in microseconds since the
 * epoch; comments become opt_comment options.
 */
export function enhancedPacketBlock(micros: number, packet: Packet, comments: readonly string[]): Buffer {
  const captured = packet.head.length + packet.payload.length;
  const padded = pad4(captured);
  const options = encodeOptions(comments.map((c) => [OPT_COMMENT, Buffer.from(c, "utf8")] as const));
  const total = 28 + padded + options.length + 4;
  const out = Buffer.allocUnsafe(total);
  out.writeUInt32LE(BLOCK_EPB, 0);
  out.writeUInt32LE(total, 4);
  out.writeUInt32LE(0, 8);
  const ts = Math.max(0, Math.round(micros));
  out.writeUInt32LE(Math.floor(ts / 0x100000000), 12);
  out.writeUInt32LE(ts % 0x100000000, 16);
  out.writeUInt32LE(captured, 20);
  out.writeUInt32LE(packet.length, 24);
  packet.head.copy(out, 28);
  out.set(packet.payload, 28 + packet.head.length);
  out.fill(0, 28 + captured, 28 + padded);
  options.copy(out, 28 + padded);
  out.writeUInt32LE(total, total - 4);
  return out;
}

function block(type: number, body: Uint8Array, options: readonly Option[]): Buffer {
  const opts = encodeOptions(options);
  const padded = pad4(body.length);
  const total = 8 + padded + opts.length + 4;
  const out = Buffer.alloc(total);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(total, 4);
  out.set(body, 8);
  opts.copy(out, 8 + padded);
  out.writeUInt32LE(total, total - 4);
  return out;
}

/** Options then opt_endofopt; nothing at all when there are none. */
function encodeOptions(options: readonly Option[]): Buffer {
  if (options.length === 0) return Buffer.alloc(0);
  return Buffer.concat([...options.map(([code, value]) => tlv(code, value)), tlv(OPT_ENDOFOPT, new Uint8Array(0))]);
}

/** code (16), length (16), value padded to 32 bits: the shape of options and NRB records. */
function tlv(code: number, value: Uint8Array): Buffer {
  if (value.length > 0xffff) throw new RangeError(`pcapng option ${code} is ${value.length} bytes, at most 65535`);
  const out = Buffer.alloc(4 + pad4(value.length));
  out.writeUInt16LE(code, 0);
  out.writeUInt16LE(value.length, 2);
  out.set(value, 4);
  return out;
}

export function pad4(n: number): number {
  return (n + 3) & ~3;
}
