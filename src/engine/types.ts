/** Shared vocabulary of the engine: addresses, versions, commands, directions. */

/** The protocol a client spoke: SOCKS4, SOCKS4a (SOCKS4 with a hostname) or SOCKS5. */
export type SocksVersion = 4 | "4a" | 5;

/** The three SOCKS commands. */
export type SocksCommand = "connect" | "bind" | "udp";

/** "up" is client to target, "down" is target to client. */
export type Direction = "up" | "down";

/**
 * A destination as the client wrote it. `host` is a dotted IPv4 address, an IPv6 address in
 * RFC 5952 form, or a domain name kept byte for byte (latin1) exactly as it was on the wire.
 */
export interface SocksAddress {
  readonly type: "ipv4" | "ipv6" | "domain";
  readonly host: string;
  readonly port: number;
}

/** A socket endpoint, with IPv4-mapped IPv6 addresses already normalised to IPv4. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/** Identifies a session in every hook call and fact. Ids are unique within one engine. */
export type SessionId = number;
