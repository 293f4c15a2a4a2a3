/**
 * Which application protocol a session speaks, from the first bytes its client sent after the
 * SOCKS handshake: TLS, HTTP/1.x, HTTP/2 (prior knowledge) or SSH. Pure and total.
 */
import { DETECT_LIMIT, NEED_MORE, UNKNOWN, type Detection, type Scanner } from "./detection.js";
import { HttpRequestScanner } from "./http-request.js";
import { SshBannerScanner } from "./ssh-banner.js";
import { TlsClientHelloScanner } from "./tls-client-hello.js";

/**
 * `bytes` is everything the client has sent so far (at least the first DETECT_LIMIT bytes of
 * it). Returns "need-more" while a longer prefix could still decide, and a final answer as soon
 * as one is possible; "unknown" on the first byte that fits no protocol, or once DETECT_LIMIT
 * bytes did not decide. Bytes past the limit are never looked at, so the answer for a long input
 * equals the answer for its first DETECT_LIMIT bytes.
 */
export function detectProtocol(bytes: Uint8Array): Detection {
  if (bytes.length === 0) return NEED_MORE;
  const scanner = scannerFor(bytes[0]!);
  return scanner === undefined ? UNKNOWN : scanLimited(scanner, bytes);
}

/** A fresh scanner for the protocols a first byte allows; undefined when it allows none. */
export function scannerFor(first: number): Scanner | undefined {
  switch (first) {
    case 0x16: // TLS handshake record
      return new TlsClientHelloScanner(DETECT_LIMIT);
    case 0x53: // "S"
      return new SshBannerScanner();
    case 0x43: // "C"ONNECT
    case 0x44: // "D"ELETE
    case 0x47: // "G"ET
    case 0x48: // "H"EAD
    case 0x4f: // "O"PTIONS
    case 0x50: // "P"OST, "P"UT, "P"ATCH, "P"RI
    case 0x54: // "T"RACE
      return new HttpRequestScanner();
    default:
      return undefined;
  }
}

/** Scans at most DETECT_LIMIT bytes; undecided at the limit is "unknown". */
export function scanLimited(scanner: Scanner, bytes: Uint8Array): Detection {
  const atLimit = bytes.length >= DETECT_LIMIT;
  const answer = scanner.scan(atLimit ? bytes.subarray(0, DETECT_LIMIT) : bytes, atLimit);
  return answer.kind === "need-more" && atLimit ? UNKNOWN : answer;
}
