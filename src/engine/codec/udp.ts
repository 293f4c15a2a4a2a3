/**
 * The UDP request header of RFC 1928 §7, which wraps every datagram between a client and the
 * relay, in both directions:
 *
 *   +----+------+------+----------+----------+----------+
 *   |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
 *   | 2  |  1   |  1   | Variable |    2     | Variable |
 *
 * A datagram is whole, so a short one is an error (UDP_TRUNCATED), never "need more".
 */
import type { SocksAddress } from "../types.js";
import { addressLength, decodeAddress, writeAddress } from "./address.js";
import { fail, ok, type Decoded } from "./result.js";

export interface UdpDatagram {
  /** 0 for a whole datagram; 1–127 a fragment position, high bit = last fragment. */
  readonly frag: number;
  /** Where the payload goes (client → relay) or where it came from (relay → client). */
  readonly address: SocksAddress;
  readonly data: Buffer;
}

/** Largest UDP payload over IPv4 (65,535 − 20 IP − 8 UDP) and IPv6 (65,535 − 8 UDP). */
export const MAX_UDP_PAYLOAD_V4 = 65_507;
export const MAX_UDP_PAYLOAD_V6 = 65_527;

export function decodeUdpDatagram(bytes: Buffer): Decoded<UdpDatagram> {
  if (bytes.length < 4) return fail("UDP_TRUNCATED", `datagram of ${bytes.length} bytes is shorter than a header`);
  if (bytes[0] !== 0 || bytes[1] !== 0) return fail("UDP_BAD_RSV", `RSV = 0x${bytes.subarray(0, 2).toString("hex")}`);
  const frag = bytes[2]!;
  const address = decodeAddress(bytes, 3);
  if (address.kind === "error") return address;
  if (address.kind === "need-more") return fail("UDP_TRUNCATED", `datagram of ${bytes.length} bytes ends inside its address`);
  const used = 3 + address.used;
  return ok({ frag, address: address.value, data: bytes.subarray(used) }, bytes.length);
}

/** Header length for an address (RSV + FRAG + ATYP/ADDR/PORT). */
export function udpHeaderLength(host: string): number {
  return 3 + addressLength(host);
}

export function encodeUdpDatagram(host: string, port: number, data: Uint8Array, frag = 0): Buffer {
  const headerLength = udpHeaderLength(host);
  const out = Buffer.allocUnsafe(headerLength + data.length);
  writeHeader(out, host, port, frag);
  out.set(data, headerLength);
  return out;
}

/** The header alone (encodeUdpDatagram without the data), to send as `[header, data]` without copying the payload. */
export function encodeUdpHeader(host: string, port: number, frag = 0): Buffer {
  const out = Buffer.allocUnsafe(udpHeaderLength(host));
  writeHeader(out, host, port, frag);
  return out;
}

function writeHeader(out: Buffer, host: string, port: number, frag: number): void {
  out[0] = 0;
  out[1] = 0;
  out[2] = frag;
  writeAddress(out, 3, host, port);
}

/**
 * `decodeUdpDatagram` for the datagrams of one sender, remembering the last whole (FRAG 0)
 * header: most datagrams of an association repeat their destination, and a header byte-equal
 * to the last one reuses its decoded address (the same object, which callers may use as a cache
 * key) instead of parsing and formatting it again. Gives the same result as decodeUdpDatagram
 * for every input.
 */
export class UdpHeaderMemo {
  /** A copy of the last whole header's bytes, and what it decoded to. */
  private header: Buffer | undefined;
  private address: SocksAddress | undefined;

  decode(bytes: Buffer): Decoded<UdpDatagram> {
    const header = this.header;
    if (header !== undefined && bytes.length >= header.length && startsWith(bytes, header)) {
      return ok({ frag: 0, address: this.address!, data: bytes.subarray(header.length) }, bytes.length);
    }
    const decoded = decodeUdpDatagram(bytes);
    if (decoded.kind === "ok" && decoded.value.frag === 0) {
      this.header = Buffer.from(bytes.subarray(0, bytes.length - decoded.value.data.length));
      this.address = decoded.value.address;
    }
    return decoded;
  }
}

function startsWith(bytes: Buffer, prefix: Buffer): boolean {
  for (let i = prefix.length - 1; i >= 0; i--) if (bytes[i] !== prefix[i]) return false;
  return true;
}
