/**
 * Which application protocol a session speaks, from the first bytes its client sent after the
 * SOCKS handshake: TLS, HTTP/1.x, HTTP/2 (prior knowledge) or SSH. Pure and total.
 */
import { DETECT_LIMIT, NEED_MORE, UNKNOWN, type Detection } from "./detection.js";
import { detectHttp } from "./http-request.js";
import { detectSsh } from "./ssh-banner.js";
import { detectTls } from "./tls-client-hello.js";

/**
 * `bytes` is everything the client has sent so far (at least the first DETECT_LIMIT bytes of
 * it). Returns "need-more" while a longer prefix could still decide, and a final answer as soon
 * as one is possible; "unknown" on the first byte that fits no protocol, or once DETECT_LIMIT
 * bytes did not decide. Bytes past the limit are never looked at, so the answer for a long input
 * equals the answer for its first DETECT_LIMIT bytes.
 */
export function detectProtocol(bytes: Uint8Array): Detection {
  if (bytes.length === 0) return NEED_MORE;
  const atLimit = bytes.length >= DETECT_LIMIT;
  const head = atLimit ? bytes.subarray(0, DETECT_LIMIT) : bytes;
  let answer: Detection;
  switch (head[0]) {
    case 0x16: // TLS handshake record
      answer = detectTls(head, DETECT_LIMIT);
      break;
    case 0x53: // "S"
      answer = detectSsh(head);
      break;
    case 0x43: // "C"ONNECT
    case 0x44: // "D"ELETE
    case 0x47: // "G"ET
    case 0x48: // "H"EAD
    case 0x4f: // "O"PTIONS
    case 0x50: // "P"OST, "P"UT, "P"ATCH, "P"RI
    case 0x54: // "T"RACE
      answer = detectHttp(head, atLimit);
      break;
    default:
      return UNKNOWN;
  }
  return answer.kind === "need-more" && atLimit ? UNKNOWN : answer;
}
