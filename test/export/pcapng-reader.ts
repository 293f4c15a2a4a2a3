/**
 * A small, strict pcapng reader for the export tests: it parses SHB / IDB / EPB / NRB blocks
 * (checking block lengths at both ends, 32-bit padding and option layout), decodes IPv4 / IPv6
 * with TCP / UDP, verifies every checksum it can, and reassembles TCP conversations by sequence
 * number. Anything out of shape throws, so a test that reads a file has already checked it.
 */
import ipaddr from "ipaddr.js";

export interface Option {
  readonly code: number;
  readonly value: Buffer;
}

export interface SectionHeader {
  readonly major: number;
  readonly minor: number;
  readonly sectionLength: bigint;
  readonly options: Option[];
}

export interface InterfaceDescription {
  readonly linktype: number;
  readonly snaplen: number;
  readonly options: Option[];
}

export interface Tcp {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly window: number;
  readonly mss: number | undefined;
  readonly windowScale: number | undefined;
  /** Whether the checksum verified; undefined when the packet is snapped (cannot verify). */
  readonly checksumOk: boolean | undefined;
  readonly headerLength: number;
}

export interface Udp {
  readonly srcPort: number;
  readonly dstPort: number;
  readonly length: number;
  readonly checksumOk: boolean | undefined;
}

export interface PacketRecord {
  /** Index among the packets (EPBs), from 0. */
  readonly index: number;
  readonly interfaceId: number;
  /** Timestamp in microseconds. */
  readonly micros: bigint;
  readonly capturedLength: number;
  readonly originalLength: number;
  readonly comments: string[];
  readonly family: 4 | 6;
  readonly src: string;
  readonly dst: string;
  readonly protocol: number;
  readonly ttl: number;
  /** IPv4 only. */
  readonly ipChecksumOk: boolean | undefined;
  readonly ipId: number | undefined;
  readonly dontFragment: boolean | undefined;
  /** IP total length (IPv4) or 40 + payload length (IPv6). */
  readonly ipLength: number;
  readonly tcp: Tcp | undefined;
  readonly udp: Udp | undefined;
  /** Transport payload bytes included in the block. */
  readonly payload: Buffer;
  /** Transport payload length according to the headers. */
  readonly payloadLength: number;
}

export interface PcapngFile {
  readonly section: SectionHeader;
  readonly interfaces: InterfaceDescription[];
  readonly packets: PacketRecord[];
  /** Name Resolution Block entries: address text → names, in file order. */
  readonly names: Map<string, string[]>;
  /** Block types in file order. */
  readonly blockTypes: number[];
}

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

function fail(message: string): never {
  throw new Error(`pcapng: ${message}`);
}

export function readPcapng(file: Buffer): PcapngFile {
  const blockTypes: number[] = [];
  const interfaces: InterfaceDescription[] = [];
  const packets: PacketRecord[] = [];
  const names = new Map<string, string[]>();
  let section: SectionHeader | undefined;
  let offset = 0;
  while (offset < file.length) {
    if (file.length - offset < 12) fail(`trailing ${file.length - offset} bytes at ${offset}`);
    const type = file.readUInt32LE(offset);
    const total = file.readUInt32LE(offset + 4);
    if (total % 4 !== 0) fail(`block at ${offset}: length ${total} not a multiple of 4`);
    if (total < 12 || offset + total > file.length) fail(`block at ${offset}: length ${total} out of range`);
    if (file.readUInt32LE(offset + total - 4) !== total) fail(`block at ${offset}: trailing length ${file.readUInt32LE(offset + total - 4)} != ${total}`);
    const body = file.subarray(offset + 8, offset + total - 4);
    blockTypes.push(type);
    if (offset === 0 && type !== 0x0a0d0d0a) fail("the file does not start with a Section Header Block");
    switch (type) {
      case 0x0a0d0d0a: {
        if (body.readUInt32LE(0) !== 0x1a2b3c4d) fail("byte-order magic is not little-endian 0x1A2B3C4D");
        section = { major: body.readUInt16LE(4), minor: body.readUInt16LE(6), sectionLength: body.readBigInt64LE(8), options: readOptions(body, 16) };
        break;
      }
      case 0x00000001:
        interfaces.push({ linktype: body.readUInt16LE(0), snaplen: body.readUInt32LE(4), options: readOptions(body, 8) });
        if (body.readUInt16LE(2) !== 0) fail("IDB reserved field is not 0");
        break;
      case 0x00000006: {
        const interfaceId = body.readUInt32LE(0);
        if (interfaces[interfaceId] === undefined) fail(`EPB on undeclared interface ${interfaceId}`);
        const micros = (BigInt(body.readUInt32LE(4)) << 32n) | BigInt(body.readUInt32LE(8));
        const captured = body.readUInt32LE(12);
        const original = body.readUInt32LE(16);
        if (captured > original) fail(`EPB captured ${captured} > original ${original}`);
        const padded = (captured + 3) & ~3;
        if (20 + padded > body.length) fail("EPB packet data overruns the block");
        for (let i = 20 + captured; i < 20 + padded; i++) if (body[i] !== 0) fail("EPB padding is not zero");
        const options = readOptions(body, 20 + padded);
        const comments = options.filter((o) => o.code === 1).map((o) => o.value.toString("utf8"));
        const data = Buffer.from(body.subarray(20, 20 + captured));
        packets.push({ index: packets.length, interfaceId, micros, capturedLength: captured, originalLength: original, comments, ...decodeIp(data, original) });
        break;
      }
      case 0x00000004:
        readNames(body, names);
        break;
      default:
        fail(`unexpected block type 0x${type.toString(16)}`);
    }
    offset += total;
  }
  if (section === undefined) fail("no Section Header Block");
  return { section, interfaces, packets, names, blockTypes };
}

/** Options from `at` to the end of the body: TLVs padded to 32 bits, ended by opt_endofopt. */
function readOptions(body: Buffer, at: number): Option[] {
  const options: Option[] = [];
  let i = at;
  if (i === body.length) return options;
  for (;;) {
    if (i + 4 > body.length) fail("option header overruns the block");
    const code = body.readUInt16LE(i);
    const length = body.readUInt16LE(i + 2);
    if (code === 0) {
      if (length !== 0) fail("opt_endofopt with a length");
      if (i + 4 !== body.length) fail(`${body.length - i - 4} bytes after opt_endofopt`);
      return options;
    }
    const padded = (length + 3) & ~3;
    if (i + 4 + padded > body.length) fail(`option ${code} overruns the block`);
    for (let p = i + 4 + length; p < i + 4 + padded; p++) if (body[p] !== 0) fail("option padding is not zero");
    options.push({ code, value: Buffer.from(body.subarray(i + 4, i + 4 + length)) });
    i += 4 + padded;
  }
}

function readNames(body: Buffer, names: Map<string, string[]>): void {
  let i = 0;
  for (;;) {
    if (i + 4 > body.length) fail("NRB record overruns the block");
    const type = body.readUInt16LE(i);
    const length = body.readUInt16LE(i + 2);
    if (type === 0) {
      if (length !== 0) fail("nrb_record_end with a length");
      if (i + 4 !== body.length) fail("NRB has options or bytes after its records (not expected here)");
      return;
    }
    const width = type === 1 ? 4 : type === 2 ? 16 : fail(`NRB record type ${type}`);
    const value = body.subarray(i + 4, i + 4 + length);
    if (value[value.length - 1] !== 0) fail("NRB name is not NUL-terminated");
    const address = ipaddr.fromByteArray(Array.from(value.subarray(0, width))).toString();
    const list = value
      .subarray(width, value.length - 1)
      .toString("utf8")
      .split("\0");
    names.set(address, [...(names.get(address) ?? []), ...list]);
    i += 4 + ((length + 3) & ~3);
  }
}

/** 16-bit ones' complement sum of several pieces (each even-length except the last). */
export function onesComplement(...pieces: Uint8Array[]): number {
  let sum = 0;
  const all = Buffer.concat(pieces);
  for (let i = 0; i + 1 < all.length; i += 2) sum += all.readUInt16BE(i);
  if (all.length % 2 === 1) sum += all[all.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

type Decoded = Omit<PacketRecord, "index" | "interfaceId" | "micros" | "capturedLength" | "originalLength" | "comments">;

function decodeIp(data: Buffer, original: number): Decoded {
  if (data.length < 1) fail("empty packet");
  const version = data[0]! >> 4;
  let family: 4 | 6;
  let headerLength: number;
  let ipLength: number;
  let protocol: number;
  let ttl: number;
  let src: Buffer;
  let dst: Buffer;
  let ipChecksumOk: boolean | undefined;
  let ipId: number | undefined;
  let dontFragment: boolean | undefined;
  if (version === 4) {
    family = 4;
    headerLength = (data[0]! & 0x0f) * 4;
    if (headerLength !== 20) fail(`IPv4 header length ${headerLength}`);
    ipLength = data.readUInt16BE(2);
    ipChecksumOk = onesComplement(data.subarray(0, 20)) === 0xffff;
    ipId = data.readUInt16BE(4);
    const frag = data.readUInt16BE(6);
    if ((frag & 0x3fff) !== 0) fail("IPv4 fragment");
    dontFragment = (frag & 0x4000) !== 0;
    ttl = data[8]!;
    protocol = data[9]!;
    src = data.subarray(12, 16);
    dst = data.subarray(16, 20);
  } else if (version === 6) {
    family = 6;
    headerLength = 40;
    ipLength = 40 + data.readUInt16BE(4);
    protocol = data[6]!;
    ttl = data[7]!;
    src = data.subarray(8, 24);
    dst = data.subarray(24, 40);
  } else {
    fail(`IP version ${version}`);
  }
  if (ipLength !== original) fail(`IP length ${ipLength} != EPB original length ${original}`);
  if (ipLength > 0xffff + (family === 6 ? 40 : 0)) fail("IP packet too long");
  const snapped = data.length < ipLength;
  const transport = data.subarray(headerLength);
  const transportLength = ipLength - headerLength;
  const pseudo = Buffer.alloc(family === 4 ? 12 : 40);
  if (family === 4) {
    src.copy(pseudo, 0);
    dst.copy(pseudo, 4);
    pseudo[9] = protocol;
    pseudo.writeUInt16BE(transportLength, 10);
  } else {
    src.copy(pseudo, 0);
    dst.copy(pseudo, 16);
    pseudo.writeUInt32BE(transportLength, 32);
    pseudo[39] = protocol;
  }
  const base = {
    family,
    src: ipaddr.fromByteArray(Array.from(src)).toString(),
    dst: ipaddr.fromByteArray(Array.from(dst)).toString(),
    protocol,
    ttl,
    ipChecksumOk,
    ipId,
    dontFragment,
    ipLength,
  };
  if (protocol === 6) {
    const offsetWords = transport[12]! >> 4;
    const tcpHeader = offsetWords * 4;
    if (tcpHeader < 20 || transport.length < tcpHeader) fail("TCP header truncated");
    let mss: number | undefined;
    let windowScale: number | undefined;
    for (let i = 20; i < tcpHeader; ) {
      const kind = transport[i]!;
      if (kind === 0) break;
      if (kind === 1) {
        i++;
        continue;
      }
      const len = transport[i + 1]!;
      if (len < 2 || i + len > tcpHeader) fail("bad TCP option");
      if (kind === 2 && len === 4) mss = transport.readUInt16BE(i + 2);
      if (kind === 3 && len === 3) windowScale = transport[i + 2]!;
      i += len;
    }
    const tcp: Tcp = {
      srcPort: transport.readUInt16BE(0),
      dstPort: transport.readUInt16BE(2),
      seq: transport.readUInt32BE(4),
      ack: transport.readUInt32BE(8),
      flags: transport[13]!,
      window: transport.readUInt16BE(14),
      mss,
      windowScale,
      checksumOk: snapped ? undefined : onesComplement(pseudo, transport) === 0xffff,
      headerLength: tcpHeader,
    };
    return { ...base, tcp, udp: undefined, payload: Buffer.from(transport.subarray(tcpHeader)), payloadLength: transportLength - tcpHeader };
  }
  if (protocol === 17) {
    const length = transport.readUInt16BE(4);
    if (length !== transportLength) fail(`UDP length ${length} != IP payload ${transportLength}`);
    const checksum = transport.readUInt16BE(6);
    const udp: Udp = {
      srcPort: transport.readUInt16BE(0),
      dstPort: transport.readUInt16BE(2),
      length,
      checksumOk: snapped ? undefined : checksum !== 0 && onesComplement(pseudo, transport) === 0xffff,
    };
    return { ...base, tcp: undefined, udp, payload: Buffer.from(transport.subarray(8)), payloadLength: transportLength - 8 };
  }
  fail(`IP protocol ${protocol}`);
}

// --- TCP reassembly ------------------------------------------------------------------------------

export interface TcpSideState {
  readonly address: string;
  readonly port: number;
  /** The ISN from this side's SYN; undefined when it never sent one. */
  isn: number | undefined;
  /** Next sequence number expected from this side. */
  next: number | undefined;
  /** Stream bytes by position from ISN + 1 (snapped gaps are zero-filled and listed). */
  chunks: Buffer[];
  length: number;
  missing: number;
  fin: PacketRecord | undefined;
  rst: PacketRecord | undefined;
}

export interface TcpConversation {
  /** The side that sent the first SYN (or the first packet). */
  readonly a: TcpSideState;
  readonly b: TcpSideState;
  readonly packets: PacketRecord[];
}

export function conversationKey(p: PacketRecord): string {
  const x = `${p.src}|${p.tcp?.srcPort ?? p.udp?.srcPort}`;
  const y = `${p.dst}|${p.tcp?.dstPort ?? p.udp?.dstPort}`;
  return x < y ? `${x}<>${y}` : `${y}<>${x}`;
}

/**
 * Groups TCP packets into conversations and checks each strictly, in file order: every segment
 * starts exactly at its side's next sequence number (SYN and FIN count one), every ACK
 * acknowledges exactly what the other side has sent so far, nothing follows a FIN or RST from
 * that side. Returns each side's reassembled byte stream.
 */
export function reassembleTcp(packets: readonly PacketRecord[]): TcpConversation[] {
  const byKey = new Map<string, TcpConversation>();
  for (const p of packets) {
    if (p.tcp === undefined) continue;
    const key = conversationKey(p);
    let conv = byKey.get(key);
    if (conv === undefined) {
      const side = (address: string, port: number): TcpSideState => ({
        address,
        port,
        isn: undefined,
        next: undefined,
        chunks: [],
        length: 0,
        missing: 0,
        fin: undefined,
        rst: undefined,
      });
      conv = { a: side(p.src, p.tcp.srcPort), b: side(p.dst, p.tcp.dstPort), packets: [] };
      byKey.set(key, conv);
    }
    conv.packets.push(p);
    const fromA = conv.a.address === p.src && conv.a.port === p.tcp.srcPort;
    const from = fromA ? conv.a : conv.b;
    const to = fromA ? conv.b : conv.a;
    const t = p.tcp;
    if (from.fin !== undefined || from.rst !== undefined) {
      // Only the final ACK of a FIN exchange may follow this side's FIN.
      if (from.rst !== undefined || t.flags !== TCP.ACK || p.payloadLength !== 0) fail(`packet ${p.index} after its side's FIN/RST`);
    }
    if (t.flags & TCP.SYN) {
      if (from.isn !== undefined) fail(`second SYN from one side at packet ${p.index}`);
      if (p.payloadLength !== 0) fail("SYN with data");
      from.isn = t.seq;
      from.next = (t.seq + 1) >>> 0;
    } else if (from.next === undefined) {
      // A RST answering a SYN from a side that never opened (connection refused).
      if (!(t.flags & TCP.RST)) fail(`packet ${p.index} from a side that never sent SYN`);
    } else if (t.seq !== from.next) {
      fail(`packet ${p.index}: seq ${t.seq} != expected ${from.next}`);
    }
    if (t.flags & TCP.ACK) {
      if (to.next === undefined) fail(`packet ${p.index} acknowledges a side that never sent SYN`);
      if (t.ack !== to.next) fail(`packet ${p.index}: ack ${t.ack} != other side's next ${to.next}`);
    } else if (!(t.flags & TCP.SYN) && !(t.flags & TCP.RST)) {
      fail(`packet ${p.index} without ACK`);
    }
    if (p.payloadLength > 0) {
      if (from.next === undefined) fail("data before SYN");
      from.chunks.push(p.payload);
      const gap = p.payloadLength - p.payload.length;
      if (gap > 0) from.chunks.push(Buffer.alloc(gap));
      from.missing += gap;
      from.length += p.payloadLength;
      from.next = (from.next + p.payloadLength) >>> 0;
    }
    if (t.flags & TCP.FIN) {
      from.fin = p;
      from.next = (from.next! + 1) >>> 0;
    }
    if (t.flags & TCP.RST) from.rst = p;
  }
  return [...byKey.values()];
}

/** The bytes one side sent. */
export function streamOf(side: TcpSideState): Buffer {
  return Buffer.concat(side.chunks);
}
