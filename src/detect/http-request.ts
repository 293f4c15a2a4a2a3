/**
 * HTTP/1.x request detection (RFC 9112 §3, §5) and the HTTP/2 prior-knowledge preface (RFC 9113
 * §3.4). Pure and total; every byte of the request line is checked as it arrives, so "unknown"
 * comes at the first byte no request could have.
 */
import { NEED_MORE, UNKNOWN, latin1, type Detection } from "./detection.js";

/** The methods recognised, as registered (RFC 9110 §9, RFC 5789 for PATCH); case-sensitive. */
export const HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"] as const;

/** The client connection preface (RFC 9113 §3.4). */
export const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

const METHOD_TOKENS = HTTP_METHODS.map((m) => Buffer.from(`${m} `, "latin1"));
const VERSION_PREFIX = Buffer.from("HTTP/1.", "latin1");
const SP = 0x20;
const HTAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const DEL = 0x7f;

const HTTP2: Detection = Object.freeze({ kind: "http2" });

/** How `bytes` compares with `token`: a full match, a proper prefix of it, or neither. */
function compare(bytes: Uint8Array, from: number, token: Uint8Array): "match" | "prefix" | "no" {
  const n = Math.min(bytes.length - from, token.length);
  for (let i = 0; i < n; i++) if (bytes[from + i] !== token[i]) return "no";
  return n === token.length ? "match" : "prefix";
}

/**
 * Detects `method SP request-target SP HTTP/1.x CRLF *(field-line CRLF) CRLF` at the start of
 * `bytes`, or the h2 preface. Bare LF is accepted as a line end (RFC 9112 §2.2). The answer
 * waits for the end of the header section to read Host; when `atLimit` (the caller will never
 * see more bytes) and the request line is whole, it is reported with the headers seen so far.
 */
export function detectHttp(bytes: Uint8Array, atLimit: boolean): Detection {
  const preface = compare(bytes, 0, HTTP2_PREFACE);
  if (preface === "match") return HTTP2;
  let pending = preface === "prefix";

  let found: string | undefined;
  for (let i = 0; i < METHOD_TOKENS.length && found === undefined; i++) {
    const c = compare(bytes, 0, METHOD_TOKENS[i]!);
    if (c === "match") found = HTTP_METHODS[i];
    else if (c === "prefix") pending = true;
  }
  if (found === undefined) return pending && !atLimit ? NEED_MORE : UNKNOWN;
  const method = found;
  const more = atLimit ? UNKNOWN : NEED_MORE;

  // request-target: any visible byte (obs-text allowed, many clients send raw UTF-8), no controls.
  const targetStart = method.length + 1;
  let at = targetStart;
  while (at < bytes.length && bytes[at] !== SP) {
    const b = bytes[at]!;
    if (b <= SP || b === DEL) return UNKNOWN;
    at++;
  }
  if (at >= bytes.length) return more;
  if (at === targetStart) return UNKNOWN;
  const path = latin1(bytes.subarray(targetStart, at));
  at++;

  // HTTP-version = "HTTP/" DIGIT "." DIGIT, major 1 only.
  const v = compare(bytes, at, VERSION_PREFIX);
  if (v === "no") return UNKNOWN;
  if (v === "prefix") return more;
  at += VERSION_PREFIX.length;
  if (at >= bytes.length) return more;
  const minor = bytes[at]!;
  if (minor < 0x30 || minor > 0x39) return UNKNOWN;
  at++;
  const eol = lineEnd(bytes, at);
  if (eol === "bad") return UNKNOWN;
  if (eol === "more") return more;
  at = eol;
  const version = `1.${minor - 0x30}`;

  let host: string | undefined;
  const result = (): Detection => (host === undefined || host === "" ? { kind: "http", method, path, version } : { kind: "http", method, path, host, version });
  // field-line = field-name ":" OWS field-value OWS; the section ends with an empty line.
  for (;;) {
    const start = at;
    while (at < bytes.length && bytes[at] !== CR && bytes[at] !== LF) {
      const b = bytes[at]!;
      if ((b < SP && b !== HTAB) || b === DEL) return UNKNOWN;
      at++;
    }
    const line = bytes.subarray(start, at);
    const next = lineEnd(bytes, at);
    if (next === "bad") return UNKNOWN;
    if (next === "more") return atLimit ? result() : NEED_MORE;
    at = next;
    if (line.length === 0) return result();
    host ??= hostValue(line);
  }
}

/** Past the CR LF (or bare LF) at `at`; "more" when it is not all here, "bad" for a lone CR. */
function lineEnd(bytes: Uint8Array, at: number): number | "more" | "bad" {
  if (at >= bytes.length) return "more";
  if (bytes[at] === LF) return at + 1;
  if (bytes[at] !== CR) return "bad";
  if (at + 1 >= bytes.length) return "more";
  return bytes[at + 1] === LF ? at + 2 : "bad";
}

/** The value of a `Host:` field line (name case-insensitive, no space before the colon), else undefined. */
function hostValue(line: Uint8Array): string | undefined {
  if (line.length < 5 || line[4] !== 0x3a) return undefined;
  if (latin1(line.subarray(0, 4)).toLowerCase() !== "host") return undefined;
  let from = 5;
  let to = line.length;
  while (from < to && (line[from] === SP || line[from] === HTAB)) from++;
  while (to > from && (line[to - 1] === SP || line[to - 1] === HTAB)) to--;
  return latin1(line.subarray(from, to));
}
