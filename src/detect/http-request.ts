/**
 * HTTP/1.x request detection (RFC 9112 §3, §5) and the HTTP/2 prior-knowledge preface (RFC 9113
 * §3.4). Total; every byte is checked as it arrives, so "unknown" comes at the first byte no
 * request could have.
 */
import { NEED_MORE, UNKNOWN, latin1, type Detection, type Scanner } from "./detection.js";

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

/**
 * Detects `method SP request-target SP HTTP/1.x CRLF *(field-line CRLF) CRLF` at the start of
 * `bytes`, or the h2 preface. Bare LF is accepted as a line end (RFC 9112 §2.2). The answer
 * waits for the end of the header section to read Host; when `atLimit` (no more bytes will
 * come) and the request line is whole, it is reported with the headers seen so far.
 */
export function detectHttp(bytes: Uint8Array, atLimit: boolean): Detection {
  return new HttpRequestScanner().scan(bytes, atLimit);
}

/** How `bytes` from `from` compares with `token`: a full match, a proper prefix of it, or neither. */
function compare(bytes: Uint8Array, from: number, token: Uint8Array): "match" | "prefix" | "no" {
  const n = Math.min(bytes.length - from, token.length);
  for (let i = 0; i < n; i++) if (bytes[from + i] !== token[i]) return "no";
  return n === token.length ? "match" : "prefix";
}

/** The incremental form (see Scanner): it resumes at the byte where the last call stopped. */
export class HttpRequestScanner implements Scanner {
  private phase: "method" | "target" | "version" | "headers" = "method";
  private method = "";
  private path = "";
  private version = "";
  private host: string | undefined;
  /** Where the current field (target, version, header line) starts. */
  private start = 0;
  /** The next byte to look at. */
  private at = 0;
  private answer: Detection = NEED_MORE;

  scan(bytes: Uint8Array, atLimit: boolean): Detection {
    if (this.answer.kind === "need-more") this.answer = this.step(bytes, atLimit);
    return this.answer;
  }

  private step(bytes: Uint8Array, atLimit: boolean): Detection {
    const more = atLimit ? UNKNOWN : NEED_MORE;
    if (this.phase === "method") {
      // At most 24 bytes (the preface) are compared, again on each call.
      const preface = compare(bytes, 0, HTTP2_PREFACE);
      if (preface === "match") return HTTP2;
      let pending = preface === "prefix";
      for (let i = 0; i < METHOD_TOKENS.length && this.phase === "method"; i++) {
        const c = compare(bytes, 0, METHOD_TOKENS[i]!);
        if (c === "match") {
          this.method = HTTP_METHODS[i]!;
          this.phase = "target";
          this.start = this.at = this.method.length + 1;
        } else if (c === "prefix") {
          pending = true;
        }
      }
      if (this.phase === "method") return pending ? more : UNKNOWN;
    }

    if (this.phase === "target") {
      // request-target: any visible byte (obs-text allowed, many clients send raw UTF-8), no controls.
      while (this.at < bytes.length && bytes[this.at] !== SP) {
        const b = bytes[this.at]!;
        if (b < SP || b === DEL) return UNKNOWN;
        this.at++;
      }
      if (this.at >= bytes.length) return more;
      if (this.at === this.start) return UNKNOWN;
      this.path = latin1(bytes.subarray(this.start, this.at));
      this.phase = "version";
      this.start = this.at = this.at + 1;
    }

    if (this.phase === "version") {
      // HTTP-version = "HTTP/" DIGIT "." DIGIT, major 1 only; at most 10 bytes, compared again on each call.
      const v = compare(bytes, this.start, VERSION_PREFIX);
      if (v === "no") return UNKNOWN;
      if (v === "prefix") return more;
      const digit = this.start + VERSION_PREFIX.length;
      if (digit >= bytes.length) return more;
      const minor = bytes[digit]!;
      if (minor < 0x30 || minor > 0x39) return UNKNOWN;
      const eol = lineEnd(bytes, digit + 1);
      if (eol === "bad") return UNKNOWN;
      if (eol === "more") return more;
      this.version = `1.${minor - 0x30}`;
      this.phase = "headers";
      this.start = this.at = eol;
    }

    // field-line = field-name ":" OWS field-value OWS; the section ends with an empty line.
    for (;;) {
      while (this.at < bytes.length && bytes[this.at] !== CR && bytes[this.at] !== LF) {
        const b = bytes[this.at]!;
        if ((b < SP && b !== HTAB) || b === DEL) return UNKNOWN;
        this.at++;
      }
      // `at` stays on a CR whose LF has not come yet, so the next call looks at it again.
      const next = lineEnd(bytes, this.at);
      if (next === "bad") return UNKNOWN;
      if (next === "more") return atLimit ? this.result() : NEED_MORE;
      if (this.at === this.start) return this.result();
      this.host ??= hostValue(bytes.subarray(this.start, this.at));
      this.start = this.at = next;
    }
  }

  private result(): Detection {
    const { method, path, version, host } = this;
    return host === undefined || host === "" ? { kind: "http", method, path, version } : { kind: "http", method, path, host, version };
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
