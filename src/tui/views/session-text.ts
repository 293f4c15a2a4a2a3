/**
 * A session's facts as short, terminal-safe text, shared by the list and the detail view and
 * worded as `socksmith sessions` / `socksmith show` word them.
 */
import { formatDuration, formatEndpoint, formatReply, formatTarget } from "../../format/index.js";
import type { SessionRow } from "../types.js";
import { safe } from "./text.js";

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

/** `host:port` of a nullable pair, safe to draw; `fallback` when there is no host. */
export function endpointText(host: string | null, port: number | null, fallback = "-"): string {
  return host === null ? fallback : safe(formatEndpoint({ host, port: port ?? 0 }));
}

/** `requested → actual` when an addon redirected it, else the requested target; "-" before a request. */
export function targetText(s: SessionRow): string {
  return safe(formatTarget(s));
}

/** True when an addon sent the session somewhere other than where the client asked. */
export function isRedirected(s: SessionRow): boolean {
  return s.requested_host !== null && s.target_host !== null && (s.requested_host !== s.target_host || s.requested_port !== s.target_port);
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

/** How long the session lasted, or has lasted so far while open (`now`); "?" when it never closed (interrupted). */
export function durationText(s: SessionRow, now: number): string {
  if (s.closed_at !== null) return formatDuration(s.closed_at - s.opened_at);
  if (s.status === "open") return formatDuration(Math.max(0, now - s.opened_at));
  return "?";
}

/** `tls example.com`, `http`, or "" when nothing was detected. */
export function protocolText(s: SessionRow): string {
  if (s.protocol === null) return "";
  return safe(s.sni === null ? s.protocol : `${s.protocol} ${s.sni}`);
}
