/**
 * The capture's totals for the status bar, read at most once a second (counting is the costly
 * part of a poll), the first time as soon as the TUI draws. A read that fails is `failure`: the
 * capture can no longer be read, and the app shows why instead of the list.
 */
import { useEffect, useRef, useState } from "react";
import type { CaptureStats, SessionSource } from "./types.js";

export interface CaptureStatsState {
  readonly stats: CaptureStats | undefined;
  readonly failure: string | undefined;
}

export function useCaptureStats(source: SessionSource, tick: number): CaptureStatsState {
  const [stats, setStats] = useState<CaptureStats | undefined>(undefined);
  const [failure, setFailure] = useState<string | undefined>(undefined);
  const lastStats = useRef(0);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `tick` paces the once-a-second stats read; `stats` lets the first read through
  useEffect(() => {
    if (stats !== undefined && Date.now() - lastStats.current < 1000) return;
    lastStats.current = Date.now();
    try {
      setStats(source.stats());
    } catch (err) {
      setFailure((err as Error).message);
    }
  }, [source, tick, stats]);
  return { stats, failure };
}
