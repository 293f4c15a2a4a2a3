/**
 * SOCKS5 addresses (RFC 1928 §5): ATYP, DST.ADDR, DST.PORT, shared by requests, replies and
 * the UDP header; plus the IP text <-> bytes helpers the other codecs use.
 *
 *   +------+----------+----------+
 *   | ATYP | DST.ADDR | DST.PORT |
 *   +------+----------+----------+
 *   |  1   | Variable |    2     |
 *
 * ATYP 0x01: 4 bytes IPv4; 0x03: 1 length byte + that many name bytes; 0x04: 16 bytes IPv6.
 */
import { isIPv4, isIPv6 } from "node:net";
import ipaddr from "ipaddr.js";
import type { Endpoint, SocksAddress } from "../types.js";
import { NEED_MORE, fail, ok, type Decoded } from "./result.js";

export const ATYP = { IPV4: 0x01, DOMAIN: 0x03, IPV6: 0x04 } as const;

/** Decodes ATYP + address + port starting at `at`; `used` counts from `at`. */
export function decodeAddress(bytes: Uint8Array, at: number): Decoded<SocksAddress> {
  if (bytes.length < at + 1) return NEED_MORE;
  const atyp = bytes[at]!;
  switch (atyp) {
    case ATYP.IPV4: {
      if (bytes.length < at + 7) return NEED_MORE;
      const host = ipv4Text(bytes, at + 1);
      return ok({ type: "ipv4", host, port: readPort(bytes, at + 5) }, 7);
    }
    case ATYP.IPV6: {
      if (bytes.length < at + 19) return NEED_MORE;
      const raw = bytes.subarray(at + 1, at + 17);
      const port = readPort(bytes, at + 17);
      // An IPv4-mapped IPv6 destination is an IPv4 destination (normalised before rules, source checks and replies).
      if (isMappedIPv4(raw)) return ok({ type: "ipv4", host: ipv4Text(raw, 12), port }, 19);
      return ok({ type: "ipv6", host: formatIPv6(raw), port }, 19);
    }
    case ATYP.DOMAIN: {
      if (bytes.length < at + 2) return NEED_MORE;
      const len = bytes[at + 1]!;
      if (bytes.length < at + 2 + len + 2) return NEED_MORE;
      // latin1 keeps every byte as one char, so the name can be checked and re-encoded exactly.
      const host = Buffer.from(bytes.buffer, bytes.byteOffset + at + 2, len).toString("latin1");
      return ok({ type: "domain", host, port: readPort(bytes, at + 2 + len) }, 2 + len + 2);
    }
    default:
      return fail("UNKNOWN_ADDRESS_TYPE", `unknown address type 0x${hex(atyp)}`);
  }
}

/** Encoded length of an address (ATYP through port); `asDomain` forces ATYP 3. */
export function addressLength(host: string, asDomain = false): number {
  if (asDomain) return 2 + Buffer.byteLength(host, "latin1") + 2;
  if (isIPv4(host)) return 7;
  if (isIPv6(host)) return mappedIPv4(host) === undefined ? 19 : 7;
  return 2 + Buffer.byteLength(host, "latin1") + 2;
}

/**
 * Writes ATYP + address + port at `at` and returns the offset after it. IP text becomes ATYP 1
 * or 4 (IPv4-mapped IPv6 becomes ATYP 1); anything else, or any host when `asDomain`, is
 * written as a domain name (a client may send an IP literal as ATYP 3; re-encoding keeps it so).
 * Callers guarantee a domain is at most 255 bytes and the buffer is large enough.
 */
export function writeAddress(out: Uint8Array, at: number, host: string, port: number, asDomain = false): number {
  const v4 = asDomain ? undefined : isIPv4(host) ? host : isIPv6(host) ? mappedIPv4(host) : undefined;
  if (v4 !== undefined) {
    out[at] = ATYP.IPV4;
    writeIPv4(out, at + 1, v4);
    writePort(out, at + 5, port);
    return at + 7;
  }
  if (!asDomain && isIPv6(host)) {
    out[at] = ATYP.IPV6;
    out.set(ipaddr.IPv6.parse(host).toByteArray(), at + 1);
    writePort(out, at + 17, port);
    return at + 19;
  }
  const name = Buffer.from(host, "latin1");
  out[at] = ATYP.DOMAIN;
  out[at + 1] = name.length;
  out.set(name, at + 2);
  writePort(out, at + 2 + name.length, port);
  return at + 2 + name.length + 2;
}

/** Writes a dotted IPv4 address as 4 bytes. */
export function writeIPv4(out: Uint8Array, at: number, host: string): void {
  let octet = 0;
  let i = at;
  for (let c = 0; c < host.length; c++) {
    const ch = host.charCodeAt(c);
    if (ch === 0x2e) {
      out[i++] = octet;
      octet = 0;
    } else {
      octet = octet * 10 + (ch - 0x30);
    }
  }
  out[i] = octet;
}

/** The decimal text of every byte value, made once (no number-to-string conversion per address). */
const OCTETS: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));

/**
 * Dotted text of 4 bytes. Array.join gives one flat string; a template literal would give a
 * tree of cons strings, which a long-lived socket keeps (as its host) for the tunnel's life.
 */
export function ipv4Text(bytes: Uint8Array, at: number): string {
  return [OCTETS[bytes[at]!], OCTETS[bytes[at + 1]!], OCTETS[bytes[at + 2]!], OCTETS[bytes[at + 3]!]].join(".");
}

export function readPort(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 8) | bytes[at + 1]!;
}

export function writePort(out: Uint8Array, at: number, port: number): void {
  out[at] = (port >>> 8) & 0xff;
  out[at + 1] = port & 0xff;
}

/** RFC 5952 text of 16 IPv6 bytes. */
export function formatIPv6(raw: Uint8Array): string {
  return ipaddr.fromByteArray(Array.from(raw)).toString();
}

function isMappedIPv4(raw: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (raw[i] !== 0) return false;
  return raw[10] === 0xff && raw[11] === 0xff;
}

/** The IPv4 inside an IPv4-mapped IPv6 text address (`::ffff:1.2.3.4`), or undefined. */
export function mappedIPv4(host: string): string | undefined {
  if (!isIPv6(host)) return undefined;
  const parsed = ipaddr.IPv6.parse(host);
  return parsed.isIPv4MappedAddress() ? parsed.toIPv4Address().toString() : undefined;
}

/** Whether IPv6 text is the unspecified address (::) in any spelling. */
export function isUnspecifiedIPv6(host: string): boolean {
  return (
    isIPv6(host) &&
    ipaddr.IPv6.parse(host)
      .toByteArray()
      .every((b) => b === 0)
  );
}

/** Normalises an address as reported by a socket: IPv4-mapped IPv6 becomes plain IPv4. */
export function normalizeHost(host: string): string {
  // Only IPv6 text has a colon: IPv4 text and names are returned as they are, without an IPv6 parse.
  if (!host.includes(":")) return host;
  if (host.length > 7 && host.charCodeAt(0) === 0x3a && host.startsWith("::ffff:") && isIPv4(host.slice(7))) {
    return host.slice(7);
  }
  return mappedIPv4(host) ?? host;
}

export function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/** `host:port`, an IPv6 host in brackets: how the engine names an endpoint in messages. */
export function formatEndpoint(e: Endpoint): string {
  return e.host.includes(":") ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}
