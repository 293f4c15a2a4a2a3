/**
 * Every way a SOCKS exchange can fail, as a stable code, and the one mapping from a code to the
 * reply each protocol version sends.
 */

/** SOCKS5 reply codes, named as in RFC 1928 §6. */
export const REP = {
  SUCCEEDED: 0x00,
  GENERAL_FAILURE: 0x01,
  NOT_ALLOWED: 0x02,
  NETWORK_UNREACHABLE: 0x03,
  HOST_UNREACHABLE: 0x04,
  CONNECTION_REFUSED: 0x05,
  TTL_EXPIRED: 0x06,
  COMMAND_NOT_SUPPORTED: 0x07,
  ADDRESS_TYPE_NOT_SUPPORTED: 0x08,
} as const;

/** SOCKS4 reply codes (CD), from SOCKS4.protocol. */
export const CD = {
  GRANTED: 90,
  REJECTED: 91,
  NO_IDENTD: 92,
  IDENTD_MISMATCH: 93,
} as const;

/** Short human names for SOCKS5 reply codes, as shown in logs and the TUI. */
export const REP_NAMES: Readonly<Record<number, string>> = {
  0x00: "ok",
  0x01: "failure",
  0x02: "not allowed",
  0x03: "net unreachable",
  0x04: "host unreachable",
  0x05: "refused",
  0x06: "timeout",
  0x07: "cmd unsupported",
  0x08: "atyp unsupported",
};

/** Stable codes for protocol and connect failures. */
export type ProtocolErrorCode =
  /** The first byte was neither 0x04 nor 0x05. */
  | "UNKNOWN_VERSION"
  /** A SOCKS5 greeting with NMETHODS = 0. */
  | "NO_METHODS"
  /** None of the offered methods is acceptable. */
  | "NO_ACCEPTABLE_METHOD"
  /** RFC 1929 sub-negotiation with VER != 0x01. */
  | "BAD_AUTH_VERSION"
  /** Credentials rejected. */
  | "AUTH_FAILED"
  /** A request with the wrong VER byte. */
  | "BAD_REQUEST_VERSION"
  /** CMD not CONNECT, BIND or UDP ASSOCIATE (or not implemented). */
  | "UNKNOWN_COMMAND"
  /** ATYP not 1, 3 or 4. */
  | "UNKNOWN_ADDRESS_TYPE"
  /**
   * A destination nobody should dial: an empty, over-long or malformed hostname (control bytes,
   * brackets, spaces), or the unspecified address 0.0.0.0 / ::.
   */
  | "BAD_DESTINATION"
  /** A SOCKS4 USERID or 4a hostname longer than the cap, or never terminated. */
  | "FIELD_TOO_LONG"
  /** Port 0 as a destination. */
  | "BAD_PORT"
  /** Refused by a rule or an addon. */
  | "DENIED"
  /** Name resolution failed. */
  | "DNS_FAILED"
  /** ENETUNREACH / ENETDOWN. */
  | "NETWORK_UNREACHABLE"
  /** EHOSTUNREACH / EHOSTDOWN. */
  | "HOST_UNREACHABLE"
  /** ECONNREFUSED / ECONNRESET while connecting. */
  | "CONNECTION_REFUSED"
  /** The connect timeout fired, or ETIMEDOUT. */
  | "CONNECT_TIMEOUT"
  /** A UDP datagram shorter than its header says. */
  | "UDP_TRUNCATED"
  /** A UDP datagram with RSV != 0. */
  | "UDP_BAD_RSV"
  /** A UDP datagram with FRAG != 0 (fragmentation is not implemented, RFC 1928 §7). */
  | "UDP_FRAGMENTED"
  /** Anything else. */
  | "GENERAL_FAILURE";

/** A decode or connect failure with its stable code. Never thrown across the engine boundary. */
export interface ProtocolError {
  readonly code: ProtocolErrorCode;
  readonly message: string;
}

export function protocolError(code: ProtocolErrorCode, message: string): ProtocolError {
  return { code, message };
}

/** The SOCKS5 REP byte for a failure code (Dante's table; DNS failure is 0x04 as in Dante and Tor). */
export function socks5Rep(code: ProtocolErrorCode): number {
  switch (code) {
    case "DENIED":
    case "BAD_PORT":
      return REP.NOT_ALLOWED;
    case "NETWORK_UNREACHABLE":
      return REP.NETWORK_UNREACHABLE;
    case "HOST_UNREACHABLE":
    case "DNS_FAILED":
    case "BAD_DESTINATION":
      return REP.HOST_UNREACHABLE;
    case "CONNECTION_REFUSED":
      return REP.CONNECTION_REFUSED;
    case "CONNECT_TIMEOUT":
      return REP.TTL_EXPIRED;
    case "UNKNOWN_COMMAND":
      return REP.COMMAND_NOT_SUPPORTED;
    case "UNKNOWN_ADDRESS_TYPE":
      return REP.ADDRESS_TYPE_NOT_SUPPORTED;
    case "UNKNOWN_VERSION":
    case "NO_METHODS":
    case "NO_ACCEPTABLE_METHOD":
    case "BAD_AUTH_VERSION":
    case "AUTH_FAILED":
    case "BAD_REQUEST_VERSION":
    case "FIELD_TOO_LONG":
    case "UDP_TRUNCATED":
    case "UDP_BAD_RSV":
    case "UDP_FRAGMENTED":
    case "GENERAL_FAILURE":
      return REP.GENERAL_FAILURE;
  }
}

/** The SOCKS4 CD byte: 91 for every failure (92/93 are about identd, which we do not use). */
export function socks4Cd(rep: number): number {
  return rep === REP.SUCCEEDED ? CD.GRANTED : CD.REJECTED;
}

/** The failure code for a Node connect or lookup error, from its errno code. */
export function codeForErrno(errno: string | undefined): ProtocolErrorCode {
  switch (errno) {
    case "ENETUNREACH":
    case "ENETDOWN":
      return "NETWORK_UNREACHABLE";
    case "EHOSTUNREACH":
    case "EHOSTDOWN":
      return "HOST_UNREACHABLE";
    case "ECONNREFUSED":
    case "ECONNRESET":
      return "CONNECTION_REFUSED";
    case "ETIMEDOUT":
      return "CONNECT_TIMEOUT";
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NODATA":
    case "EAI_NONAME":
    case "EAI_FAIL":
      return "DNS_FAILED";
    default:
      return "GENERAL_FAILURE";
  }
}
