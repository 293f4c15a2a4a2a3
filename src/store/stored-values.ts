/**
 * How facts become column values, one mapping for every writer of the capture file: the
 * recorder (live sessions) and replayed-session.ts (a client replay recorded as a session).
 */
import type { Detection } from "../detect/index.js";
import type { SessionStatus } from "./schema.js";

/** How a session ended, in the filter language's terms. */
export function statusOf(rep: number | undefined, code: string | undefined, reason: string): SessionStatus {
  if (rep === 0) return "ok";
  if (reason === "auth-failed" || reason === "rejected" || reason === "session-limit") return "denied";
  if (rep === 0x02 || code === "DENIED") return "denied";
  return "failed";
}

/** What the protocol sniffer found, as the `detected` columns (protocol, sni, info); undefined when it found nothing. */
export function storedDetection(d: Detection): { protocol: string; sni: string | null; info: string | null } | undefined {
  switch (d.kind) {
    case "need-more":
    case "unknown":
      return undefined;
    case "tls":
      return { protocol: "tls", sni: d.sni ?? null, info: JSON.stringify({ alpn: d.alpn, ...(d.version === undefined ? {} : { version: d.version }) }) };
    case "http":
      return { protocol: "http", sni: d.host ?? null, info: JSON.stringify({ method: d.method, path: d.path, host: d.host, version: d.version }) };
    case "http2":
      return { protocol: "http2", sni: null, info: null };
    case "ssh":
      return { protocol: "ssh", sni: null, info: JSON.stringify({ banner: d.banner }) };
  }
}
