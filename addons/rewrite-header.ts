/**
 * Rewrites an HTTP/1 request header on the way to the server (plain HTTP only; TLS bytes are
 * opaque). A header split across two chunks is not matched: the rewrite is per chunk.
 *
 *   npx socksmith -s addons/rewrite-header.ts --set rewrite-header.name=User-Agent --set rewrite-header.value=socksmith
 */
import type { Addon } from "socksmith/addon";

export default {
  name: "rewrite-header",
  options: {
    name: { type: "string", default: "User-Agent", description: "header to replace (case-insensitive)" },
    value: { type: "string", default: "socksmith", description: "its new value" },
  },
  onData(chunk, ctx) {
    if (chunk.direction !== "up") return undefined;
    const text = Buffer.from(chunk.data).toString("latin1");
    const header = new RegExp(`^(${String(ctx.options.name).replace(/[^A-Za-z0-9-]/g, "")}):[^\\r\\n]*`, "im");
    if (!header.test(text)) return undefined;
    ctx.tag("rewrote", String(ctx.options.name));
    return { replace: Buffer.from(text.replace(header, `$1: ${String(ctx.options.value)}`), "latin1") };
  },
} satisfies Addon<{ name: string; value: string }>;
