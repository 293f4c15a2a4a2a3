/**
 * The TUI's clock: a poll every `pollMs` (default 100, so at most 10 renders a second come from
 * new data). `tick` counts the polls and is what re-reads the capture: memos and effects that
 * read it list `tick` as their trigger. `now` is the time of this render, the one every read and
 * view of the render uses (relative ages, `dur:` filters on open sessions).
 */
import { useEffect, useState } from "react";

export const DEFAULT_POLL_MS = 100;

export interface Poll {
  readonly tick: number;
  readonly now: number;
}

export function usePoll(pollMs = DEFAULT_POLL_MS): Poll {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setTick((t) => t + 1), pollMs);
    return () => clearInterval(timer);
  }, [pollMs]);
  return { tick, now: Date.now() };
}
