/**
 * A session's facts as short, terminal-safe text for the list and the detail view. The wording
 * `socksmith show` shares lives in format/session-fields.ts and is re-exported here; this file
 * adds what only the TUI's list uses (tone, one-word status, the target column, the TLS and upstream markers).
 */
import { formatReply, formatTarget } from "../../format/index.js";
import type { SessionRow, TlsRow } from "../types.js";
import { safe } from "./text.js";

import { routeHops } from "../../format/session-fields.js";

export { durationText, endpointText, isRedirected, protocolText } from "../../format/session-fields.js";

/** What a view colours a session by: red when it failed, was denied or interrupted, yellow while open. */
export type SessionTone = "failed" | "open" | "ok";

export function sessionTone(s: SessionRow): SessionTone {
  switch (s.status) {
    case "open":
      return "open";
    case "ok":
      return "ok";
    case "denied":
    case "failed":
    case "interrupted":
      return "failed";
    default: {
      const never: never = s.status;
      return never;
    }
  }
}

/** `requested → actual` when an addon redirected it, else the requested target; "-" before a request. */
export function targetText(s: SessionRow): string {
  return safe(formatTarget(s));
}

/**
 * One word or reply for the list: `open`, `ok`, `interrupted`, the failure reply (`05 refused`),
 * `denied` (with its reply when there was one), or `failed (close-reason)` when the session failed
 * before any reply.
 */
export function statusText(s: SessionRow): string {
  const reply = s.reply === null || s.reply === 0 ? undefined : formatReply(s.reply, s.version);
  switch (s.status) {
    case "open":
    case "ok":
    case "interrupted":
      return s.status;
    case "denied":
      return reply === undefined ? "denied" : `denied ${reply}`;
    case "failed":
      if (reply !== undefined) return reply;
      return s.close_reason === null ? "failed" : `failed (${safe(s.close_reason)})`;
    default: {
      const never: never = s.status;
      return never;
    }
  }
}

/**
 * The list's upstream marker: the first hop as `host:port`, with `+N` for the hops after it (the
 * detail view has the whole route); "" for a session that went direct.
 */
export function viaMarker(s: SessionRow): string {
  const hops = routeHops(s.route);
  if (hops.length === 0) return "";
  const first = hops[0]!.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, "");
  return hops.length === 1 ? first : `${first}+${hops.length - 1}`;
}

/**
 * The list's TLS marker, in the filter's three states (`tls:intercepted|passthrough|failed`): `mitm`
 * (decrypted: the stream shows plaintext), `pass` (relayed untouched) or `fail` (a handshake failed);
 * "" for a session without a tls row.
 */
export function tlsMarker(t: TlsRow | undefined): string {
  if (t === undefined) return "";
  if (t.failure_code !== null) return "fail";
  return t.intercepted === 1 ? "mitm" : "pass";
}
