/**
 * SOCKS4 and SOCKS4a (SOCKS4.protocol, SOCKS4A.protocol): request and reply.
 *
 *   request: VN=4 | CD | DSTPORT(2) | DSTIP(4) | USERID | NUL [| HOSTNAME | NUL]   (4a)
 *   reply:   VN=0 | CD | DSTPORT(2) | DSTIP(4)                                    (8 bytes)
 *
 * DSTIP 0.0.0.x with x != 0 marks 4a: a hostname follows the USERID's NUL. 0.0.0.0 is not 4a.
 */
import type { SocksAddress, SocksCommand } from "../types.js";
import { hex, ipv4Text, readPort, writeIPv4, writePort } from "./address.js";
import { NEED_MORE, fail, ok, type Decoded } from "./result.js";

export const SOCKS4_VERSION = 0x04;
/** The VN of a SOCKS4 reply is 0, not 4. */
export const SOCKS4_REPLY_VERSION = 0x00;
export const SOCKS4_CMD = { CONNECT: 0x01, BIND: 0x02 } as const;
/** Longest USERID or 4a hostname we read before giving up (bytes, NUL excluded). */
export const SOCKS4_FIELD_MAX = 255;

export interface Socks4Request {
  readonly version: 4 | "4a";
  readonly command: Extract<SocksCommand, "connect" | "bind">;
  /** An IPv4 destination (SOCKS4) or a domain (SOCKS4a). */
  readonly destination: SocksAddress;
  /** The USERID octets, without the NUL. */
  readonly userid: Buffer;
}

export interface Socks4Reply {
  readonly cd: number;
  readonly port: number;
  readonly ip: string;
}

export function decodeSocks4Request(bytes: Uint8Array): Decoded<Socks4Request> {
  if (bytes.length < 1) return NEED_MORE;
  if (bytes[0] !== SOCKS4_VERSION) return fail("UNKNOWN_VERSION", `SOCKS4 version 0x${hex(bytes[0]!)}`);
  if (bytes.length < 2) return NEED_MORE;
  const cd = bytes[1]!;
  if (cd !== SOCKS4_CMD.CONNECT && cd !== SOCKS4_CMD.BIND) return fail("UNKNOWN_COMMAND", `unknown command 0x${hex(cd)}`);
  const command = cd === SOCKS4_CMD.CONNECT ? "connect" : "bind";
  if (bytes.length < 8) return NEED_MORE;
  const port = readPort(bytes, 2);
  const is4a = bytes[4] === 0 && bytes[5] === 0 && bytes[6] === 0 && bytes[7] !== 0;
  const userEnd = findNul(bytes, 8);
  if (userEnd < 0) return userEnd === TOO_LONG ? fail("FIELD_TOO_LONG", "SOCKS4 USERID longer than 255 bytes") : NEED_MORE;
  const userid = Buffer.from(bytes.subarray(8, userEnd));
  if (!is4a) {
    const host = ipv4Text(bytes, 4);
    return ok({ version: 4, command, destination: { type: "ipv4", host, port }, userid }, userEnd + 1);
  }
  const hostEnd = findNul(bytes, userEnd + 1);
  if (hostEnd < 0) return hostEnd === TOO_LONG ? fail("FIELD_TOO_LONG", "SOCKS4a hostname longer than 255 bytes") : NEED_MORE;
  const host = Buffer.from(bytes.buffer, bytes.byteOffset + userEnd + 1, hostEnd - userEnd - 1).toString("latin1");
  return ok({ version: "4a", command, destination: { type: "domain", host, port }, userid }, hostEnd + 1);
}

export function encodeSocks4Request(request: Socks4Request): Buffer {
  const { destination, userid } = request;
  const head = Buffer.alloc(8);
  head[0] = SOCKS4_VERSION;
  head[1] = request.command === "connect" ? SOCKS4_CMD.CONNECT : SOCKS4_CMD.BIND;
  writePort(head, 2, destination.port);
  const parts = [head, userid, Buffer.of(0)];
  if (request.version === "4a") {
    head.set([0, 0, 0, 1], 4);
    parts.push(Buffer.from(destination.host, "latin1"), Buffer.of(0));
  } else {
    writeIPv4(head, 4, destination.host);
  }
  return Buffer.concat(parts);
}

/** The 8-byte reply. `ip` must be dotted IPv4 (use 0.0.0.0 when there is none). */
export function encodeSocks4Reply(cd: number, port = 0, ip = "0.0.0.0"): Buffer {
  const out = Buffer.alloc(8);
  out[0] = SOCKS4_REPLY_VERSION;
  out[1] = cd;
  writePort(out, 2, port);
  writeIPv4(out, 4, ip);
  return out;
}

export function decodeSocks4Reply(bytes: Uint8Array): Decoded<Socks4Reply> {
  if (bytes.length < 1) return NEED_MORE;
  if (bytes[0] !== SOCKS4_REPLY_VERSION) return fail("UNKNOWN_VERSION", `SOCKS4 reply version 0x${hex(bytes[0]!)}`);
  if (bytes.length < 8) return NEED_MORE;
  const ip = ipv4Text(bytes, 4);
  return ok({ cd: bytes[1]!, port: readPort(bytes, 2), ip }, 8);
}

const TOO_LONG = -2;

/** Index of the NUL ending a field that starts at `from`; -1 if not there yet, TOO_LONG past the cap. */
function findNul(bytes: Uint8Array, from: number): number {
  const limit = Math.min(bytes.length, from + SOCKS4_FIELD_MAX + 1);
  for (let i = from; i < limit; i++) if (bytes[i] === 0) return i;
  return bytes.length >= from + SOCKS4_FIELD_MAX + 1 ? TOO_LONG : -1;
}
