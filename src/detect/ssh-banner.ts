/**
 * SSH identification string detection (RFC 4253 §4.2): `SSH-protoversion-softwareversion SP
 * comments CR LF`, sent by the client before anything else. Pure and total.
 */
import { NEED_MORE, UNKNOWN, latin1, type Detection, type Scanner } from "./detection.js";

/** "SSH-1.99" announces a server or client that also speaks 2.0 (RFC 4253 §5.1). */
export const SSH_PREFIXES = ["SSH-2.0-", "SSH-1.99-"] as const;
/** The longest identification string, CR LF included (RFC 4253 §4.2). */
export const SSH_BANNER_MAX = 255;

const PREFIX_BYTES = SSH_PREFIXES.map((p) => Buffer.from(p, "latin1"));
const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;

/**
 * Detects an identification string at the start of `bytes`. Accepts a bare LF as the end, as
 * OpenSSH does; requires a non-empty softwareversion and printable US-ASCII throughout.
 */
export function detectSsh(bytes: Uint8Array): Detection {
  let start = -1;
  let pending = false;
  for (const prefix of PREFIX_BYTES) {
    const n = Math.min(bytes.length, prefix.length);
    let same = true;
    for (let i = 0; i < n && same; i++) same = bytes[i] === prefix[i];
    if (same && n === prefix.length) start = prefix.length;
    else if (same) pending = true;
  }
  if (start < 0) return pending ? NEED_MORE : UNKNOWN;

  for (let at = start; at < bytes.length; at++) {
    const b = bytes[at]!;
    // The string's length once its LF is in: this byte is the LF, or the LF is still to come.
    if ((b === LF ? at + 1 : at + 2) > SSH_BANNER_MAX) return UNKNOWN;
    if (b === LF) {
      const end = bytes[at - 1] === CR ? at - 1 : at;
      return end === start ? UNKNOWN : { kind: "ssh", banner: latin1(bytes.subarray(0, end)) };
    }
    if (b === CR) {
      if (at + 1 < bytes.length && bytes[at + 1] !== LF) return UNKNOWN;
      continue;
    }
    if (b < SP || b > 0x7e || (at === start && b === SP)) return UNKNOWN;
  }
  return NEED_MORE;
}

/**
 * The incremental form (see Scanner). The banner is at most 255 bytes, so reading it again from
 * the start on each call costs little.
 */
export class SshBannerScanner implements Scanner {
  scan(bytes: Uint8Array): Detection {
    return detectSsh(bytes);
  }
}
