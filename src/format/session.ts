/** Facts of a captured session as short text, shared by the CLI and the TUI. */
import type { SessionRow } from "../model/capture-rows.js";
import { formatEndpoint } from "../engine/index.js";

/**
 * `requested → actual` when an addon redirected the session, else the requested target; "-"
 * before a request. Not terminal-safe by itself: callers escape what they print.
 */
export function formatTarget(s: Pick<SessionRow, "requested_host" | "requested_port" | "target_host" | "target_port">): string {
  if (s.requested_host === null) return "-";
  const requested = formatEndpoint({ host: s.requested_host, port: s.requested_port ?? 0 });
  if (s.target_host === null) return requested;
  const actual = formatEndpoint({ host: s.target_host, port: s.target_port ?? 0 });
  return actual === requested ? requested : `${requested} → ${actual}`;
}
