/**
 * Which of the proxy's notes the status bar shows (the TUI says what happened, and
 * stops saying it once it no longer applies).
 * - information (an addon's ctx.log, an addon loaded or reloaded, a notice): INFO_MS, or until a key;
 * - warnings and addon errors (a hook failed, a reload failed): ISSUE_MS, or until a key;
 * - errors about the proxy itself (capture stopped): always, they describe its state.
 * "Until a key": a note older than the last key press is gone; a newer one shows.
 */
import type { LiveStatus } from "./types.js";

export const INFO_MS = 10_000;
export const ISSUE_MS = 60_000;
/** The app's own messages ("exported session 3 …") clear after this long, or on the next key. */
export const MESSAGE_MS = 10_000;

/** `live` without the notes that expired by `now` or came before the last key press (`dismissedAt`). */
export function visibleNotes(live: LiveStatus, now: number, dismissedAt: number): LiveStatus {
  const fresh = (at: number, ttl: number) => at > dismissedAt && now - at < ttl;
  const { lastInfo, lastWarning, lastAddonError, ...rest } = live;
  return {
    ...rest,
    ...(lastInfo !== undefined && fresh(lastInfo.at, INFO_MS) ? { lastInfo } : {}),
    ...(lastWarning !== undefined && fresh(lastWarning.at, ISSUE_MS) ? { lastWarning } : {}),
    ...(lastAddonError !== undefined && fresh(lastAddonError.at, ISSUE_MS) ? { lastAddonError } : {}),
  };
}
