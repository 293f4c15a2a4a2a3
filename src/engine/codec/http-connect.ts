/**
 * HTTP CONNECT (RFC 9110 §9.3.6), the client's side: the request that asks an HTTP proxy for a
 * tunnel and the response head that answers it. After a 2xx head the connection is the tunnel:
 * Content-Length and Transfer-Encoding in it are ignored (RFC 9110 §9.3.6), and bytes after the
 * head belong to the tunnel. The decoder is pure, incremental and total like the SOCKS codecs.
 */
import { NEED_MORE, fail, ok, type Decoded } from "./result.js";

/** Longest response head read before giving up (status line, headers and the empty line). */
export const HTTP_HEAD_MAX = 16 * 1024;

export interface HttpConnectRequest {
  /** The tunnel's far end: a name or IP address (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** Sent as `Proxy-Authorization: Basic` (RFC 7617, UTF-8) when present. */
  readonly credentials?: { readonly user: string; readonly password: string };
}

/** The status line of a response head; headers are skipped (a CONNECT client needs none). */
export interface HttpConnectResponse {
  /** `HTTP/1.0` or `HTTP/1.1`. */
  readonly version: string;
  readonly status: number;
  /** The reason phrase as sent (latin1), possibly empty. */
  readonly reason: string;
}

/**
 *   CONNECT host:port HTTP/1.1
 *   Host: host:port
 *   Proxy-Authorization: Basic base64(user:password)      (with credentials)
 *
 * The host goes out byte for byte (latin1); callers pass only hosts without spaces or control
 * characters, which could otherwise end the request line early.
 */
export function encodeConnectRequest(request: HttpConnectRequest): Buffer {
  const authority = `${request.host.includes(":") ? `[${request.host}]` : request.host}:${request.port}`;
  let head = `CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n`;
  const { credentials } = request;
  if (credentials !== undefined) {
    const token = Buffer.from(`${credentials.user}:${credentials.password}`, "utf8").toString("base64");
    head += `Proxy-Authorization: Basic ${token}\r\n`;
  }
  return Buffer.from(`${head}\r\n`, "latin1");
}

const PREFIX = "HTTP/1.";

/**
 * A response head: `HTTP/1.x SP 3DIGIT [SP reason] CRLF`, header lines, an empty line. Bare LF
 * line ends are accepted (RFC 9112 §2.2). `used` ends after the empty line. Errors:
 * UNKNOWN_VERSION when the bytes do not start like an HTTP/1.x response, GENERAL_FAILURE for a
 * malformed status line, FIELD_TOO_LONG when no head ends within HTTP_HEAD_MAX bytes.
 */
export function decodeConnectResponse(bytes: Uint8Array): Decoded<HttpConnectResponse> {
  const start = Math.min(bytes.length, PREFIX.length);
  for (let i = 0; i < start; i++) {
    if (bytes[i] !== PREFIX.charCodeAt(i)) return fail("UNKNOWN_VERSION", "the upstream's answer is not an HTTP/1.x response");
  }
  const end = headEnd(bytes);
  if (end < 0) return bytes.length >= HTTP_HEAD_MAX ? fail("FIELD_TOO_LONG", `HTTP response head longer than ${HTTP_HEAD_MAX} bytes`) : NEED_MORE;
  if (end > HTTP_HEAD_MAX) return fail("FIELD_TOO_LONG", `HTTP response head longer than ${HTTP_HEAD_MAX} bytes`);
  let lineEnd = 0;
  while (bytes[lineEnd] !== 0x0a) lineEnd++;
  const line = Buffer.from(bytes.buffer, bytes.byteOffset, lineEnd).toString("latin1").replace(/\r$/, "");
  const match = /^(HTTP\/1\.[01]) ([0-9]{3})(?: ([^\r\n]*))?$/.exec(line);
  if (match === null) return fail("GENERAL_FAILURE", "malformed HTTP status line");
  return ok({ version: match[1]!, status: Number(match[2]), reason: match[3] ?? "" }, end);
}

/** The offset just past the empty line ending the head, or -1 when it has not arrived. */
function headEnd(bytes: Uint8Array): number {
  const limit = Math.min(bytes.length, HTTP_HEAD_MAX + 2);
  for (let i = 0; i < limit; i++) {
    if (bytes[i] !== 0x0a) continue;
    // An empty line: LF LF, or LF CR LF.
    if (bytes[i + 1] === 0x0a && i + 1 < limit) return i + 2;
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a && i + 2 < limit) return i + 3;
  }
  return -1;
}
