/**
 * What protocol detection can say about the first bytes a client sent after the SOCKS handshake.
 *
 * Every detector is pure and total: it looks at all the bytes seen so far and never
 * throws. `need-more` means a longer prefix may still decide; it is the only answer a prefix of
 * a valid message ever gets, so a partial ClientHello is never mistaken for something else.
 * Answers are monotonic: once a prefix is decided, every longer input gets the same answer.
 *
 * Strings taken from the wire (SNI, ALPN ids, request target, Host, SSH banner) are the raw
 * bytes decoded as latin1 (one char per byte, reversible with `Buffer.from(s, "latin1")`). The
 * HTTP and SSH detectors reject control bytes, but an SNI or ALPN id may hold any byte: pass
 * them through `printable` (src/format) before showing them on a terminal.
 */

export type Detection =
  /** Not decided yet: every byte so far fits some protocol. */
  | { readonly kind: "need-more" }
  /** None of the known protocols, or undecided within DETECT_LIMIT bytes. */
  | { readonly kind: "unknown" }
  | {
      readonly kind: "tls";
      /** The first host_name of the server_name extension (RFC 6066 §3); absent when not sent. */
      readonly sni?: string;
      /** The application_layer_protocol_negotiation list (RFC 7301 §3.1) in the client's order; [] when not sent. */
      readonly alpn: readonly string[];
      /**
       * The highest version offered: from supported_versions (RFC 8446 §4.2.1, GREASE values
       * skipped) when sent, else ClientHello.legacy_version. "TLS 1.3", "TLS 1.2", …, "SSL 3.0",
       * or hex ("0x7f1c") for a value without a name.
       */
      readonly version?: string;
    }
  | {
      readonly kind: "http";
      /** The request method, one of HTTP_METHODS. */
      readonly method: string;
      /** The request target as sent: origin-form "/x?y", absolute-form, authority-form (CONNECT) or "*". */
      readonly path: string;
      /** The first Host header's value without surrounding whitespace; absent when missing or empty. */
      readonly host?: string;
      /** "1.0" or "1.1" (from HTTP/1.x). */
      readonly version: string;
    }
  /** The HTTP/2 connection preface (RFC 9113 §3.4), i.e. prior-knowledge h2c. */
  | { readonly kind: "http2" }
  /** The identification string (RFC 4253 §4.2) without its CR LF, e.g. "SSH-2.0-OpenSSH_9.6". */
  | { readonly kind: "ssh"; readonly banner: string };

export type DetectionKind = Detection["kind"];

/**
 * Detection looks at most this many bytes. A message not complete by then (a ClientHello this
 * large, endless HTTP headers) is "unknown" — except an HTTP request whose request line is
 * complete, which is reported without the Host it never reached.
 */
export const DETECT_LIMIT = 16 * 1024;

/**
 * The incremental form of a detector, for ProtocolSniffer. `scan` is called with the input so
 * far; each call's input starts with the previous call's (the buffer only grows), and the answer
 * is exactly what a fresh scanner would give for the same input. In between, a scanner keeps
 * how far it got, so a client that sends its first bytes one at a time costs linear work, not
 * quadratic. `atLimit` says no more bytes will come.
 */
export interface Scanner {
  scan(bytes: Uint8Array, atLimit: boolean): Detection;
}

export const NEED_MORE: Detection = Object.freeze({ kind: "need-more" });
export const UNKNOWN: Detection = Object.freeze({ kind: "unknown" });

/** Raw bytes as latin1 text, one char per byte (see the module comment). */
export function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
}
