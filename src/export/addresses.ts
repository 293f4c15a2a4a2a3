/**
 * Addresses for the pcapng export: IP literals to bytes, stable synthetic addresses for names,
 * and putting two endpoints in one family.
 *
 * - An IP literal is parsed with ipaddr.js; an IPv4-mapped IPv6 literal counts as IPv4.
 * - A host name (or anything that is not an IP literal) gets a synthetic address from the
 *   documentation ranges, derived from the lower-cased name so the same name always gets the
 *   same address: 192.0.2.1–192.0.2.254 (RFC 5737) or 2001:db8::/32 (RFC 3849). 254 IPv4
 *   addresses mean two names can share one; the IPv6 form has 96 bits of hash.
 * - Two endpoints of different families are both written as IPv6, the IPv4 one as `::ffff:a.b.c.d`.
 */
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

export type Family = 4 | 6;

/** An address as it goes into a packet: 4 or 16 bytes. */
export interface IpAddress {
  readonly family: Family;
  readonly bytes: Uint8Array;
}

/** The bytes of an IP literal (brackets and an IPv6 zone allowed); undefined for anything else. */
export function parseIp(host: string | null | undefined): IpAddress | undefined {
  if (host === null || host === undefined) return undefined;
  const text = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  // node's isIP is strict (no "127.1", no hex octets); ipaddr.js turns the literal into bytes.
  if (isIP(text) === 0) return undefined;
  try {
    const parsed = ipaddr.process(text);
    return { family: parsed.kind() === "ipv4" ? 4 : 6, bytes: Uint8Array.from(parsed.toByteArray()) };
  } catch {
    return undefined;
  }
}

/** A stable address in the documentation range of `family` for a host name. */
export function syntheticAddress(name: string, family: Family): IpAddress {
  const key = canonicalName(name);
  if (family === 4) return { family, bytes: Uint8Array.of(192, 0, 2, 1 + (hash32(key, 0x5eed) % 254)) };
  const bytes = new Uint8Array(16);
  bytes[0] = 0x20;
  bytes[1] = 0x01;
  bytes[2] = 0x0d;
  bytes[3] = 0xb8;
  for (let word = 0; word < 3; word++) {
    const h = hash32(key, 0x6b6b + word);
    bytes[4 + word * 4] = h >>> 24;
    bytes[5 + word * 4] = (h >>> 16) & 0xff;
    bytes[6 + word * 4] = (h >>> 8) & 0xff;
    bytes[7 + word * 4] = h & 0xff;
  }
  return { family, bytes };
}

/** Two addresses in one family: unchanged when they agree, else both IPv6 (IPv4-mapped). */
export function sameFamily(a: IpAddress, b: IpAddress): [IpAddress, IpAddress] {
  if (a.family === b.family) return [a, b];
  return [toIPv6(a), toIPv6(b)];
}

export function toIPv6(address: IpAddress): IpAddress {
  if (address.family === 6) return address;
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  bytes.set(address.bytes, 12);
  return { family: 6, bytes };
}

/** Text of an address (RFC 5952 for IPv6). */
export function formatIp(address: IpAddress): string {
  return ipaddr.fromByteArray(Array.from(address.bytes)).toString();
}

/** `host:port`, with brackets around IPv6. */
export function formatEndpoint(host: string, port: number | null | undefined): string {
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return port === null || port === undefined ? h : `${h}:${port}`;
}

/** DNS names compare case-insensitively and without the root's trailing dot. */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith(".") && lower.length > 1 ? lower.slice(0, -1) : lower;
}

/**
 * A 32-bit hash of a string: FNV-1a over its UTF-16 code units, then murmur3's finaliser so
 * that nearby inputs (session 1, session 2) give unrelated outputs. Deterministic, not secret.
 */
export function hash32(text: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
