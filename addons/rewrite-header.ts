/**
 * Rewrites an HTTP/1 request header on the way to the server (plain HTTP only; TLS bytes are
 * opaque). Exact however the request is cut into reads: each request's header block is
 * collected whole (`ctx.messages`, up to 64 KiB), every request of a keep-alive connection is
 * rewritten, and bodies (Content-Length or chunked) pass untouched, so a body that looks like a
 * header is left alone. After an `Upgrade` or `CONNECT` request the rest of the connection is
 * not HTTP and passes untouched. A header that is absent is not added.
 *
 *   npx socksmith -s addons/rewrite-header.ts --set rewrite-header.name=User-Agent --set rewrite-header.value=socksmith
 */
import type { Addon, Framing, MessageEdit } from "socksmith/addon";

const HEAD: Framing = { delimiter: "\r\n\r\n" };

/**
 * One piece of a chunked body (RFC 9112 §7.1): a size line and that many bytes plus CRLF, or the
 * last chunk ("0") with its trailer fields up to the blank line. Undefined while incomplete.
 */
function chunkLength(b: Uint8Array): number | undefined {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const eol = buf.indexOf("\r\n");
  if (eol === -1) return undefined;
  const size = parseInt(buf.toString("latin1", 0, eol).split(";")[0]!.trim(), 16);
  if (Number.isNaN(size)) return eol + 2; // not chunked after all: pass the line, then frame on
  if (size > 0) return eol + 2 + size + 2;
  if (buf.length >= eol + 4 && buf[eol + 2] === 0x0d && buf[eol + 3] === 0x0a) return eol + 4;
  const end = buf.indexOf("\r\n\r\n", eol);
  return end === -1 ? undefined : end + 4;
}

const CHUNKED: Framing = { measure: chunkLength };

/** Sessions whose client is inside a chunked request body. */
const inChunkedBody = new Set<number>();

export default {
  name: "rewrite-header",
  options: {
    name: { type: "string", default: "User-Agent", description: "header to replace (case-insensitive)" },
    value: { type: "string", default: "socksmith", description: "its new value" },
  },
  onData(chunk, ctx) {
    if (chunk.direction !== "up") return undefined;
    const id = ctx.session.id;
    const name = String(ctx.options.name).replace(/[^A-Za-z0-9-]/g, "");
    const header = new RegExp(`^(${name}):[^\\r\\n]*`, "im");
    return ctx.messages(
      chunk,
      () => (inChunkedBody.has(id) ? CHUNKED : HEAD),
      (message): MessageEdit => {
        if (inChunkedBody.has(id)) {
          // The last chunk (size 0) ends the body.
          if (/^0+[;\r]/.test(message.toString("latin1", 0, 16))) inChunkedBody.delete(id);
          return undefined;
        }
        const head = message.toString("latin1");
        // Not a request head (a client that does not speak HTTP/1): leave it alone.
        if (!/^[A-Z]+ \S+ HTTP\/1\.\d\r\n/.test(head)) return undefined;
        const fields = head.slice(0, -2);
        const contentLength = /^content-length:[ \t]*(\d+)[ \t]*\r$/im.exec(fields);
        const chunked = /^transfer-encoding:[^\r]*chunked[ \t]*\r$/im.test(fields);
        const tunnel = /^CONNECT /.test(head) || /^upgrade:/im.test(fields);
        if (chunked) inChunkedBody.add(id);
        const pass = tunnel ? Infinity : chunked ? 0 : contentLength ? Number(contentLength[1]) : 0;
        if (!header.test(head)) return { pass };
        ctx.tag("rewrote", name);
        return { replace: Buffer.from(head.replace(header, `$1: ${String(ctx.options.value)}`), "latin1"), pass };
      },
    );
  },
  onClose(_summary, ctx) {
    inChunkedBody.delete(ctx.session.id);
  },
} satisfies Addon<{ name: string; value: string }>;
