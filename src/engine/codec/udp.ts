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
  out[0] = 0;
  out[1] = 0;
  out[2] = frag;
  writeAddress(out, 3, host, port);
  out.set(data, headerLength);
  return out;
}
