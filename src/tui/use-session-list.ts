/**
 * The session list's state and loading (docs/architecture.md, "Conventions": state and loading
 * live in hooks): the window of rows on screen (session-window.ts), follow mode, the selection
 * and its screen position, the sessions hidden with `d`, a payload filter's search
 * (payload-search.ts), and how many sessions the filter shows.
 *
 * Contract (the TUI runs on the relay's thread):
 * - Per poll (`tick`): one bounded step of a payload search, then one window query (only the rows
 *   on screen, indexed ranges) and one query for those rows' tls rows (never one per row). The
 *   count of shown sessions is taken once a second.
 * - A filter with `~` terms would read payload in SQL, unbounded, on every poll: the list reads
 *   through a search that reads a bounded amount per poll instead, and the search applies the
 *   filter itself.
 * - `current` is the selection as keys moved it, ahead of the next render (keys can come several
 *   per read); moving leaves follow mode.
 * - A failing query does not throw: `error` says why (the app shows it instead of the list).
 */
import { useCallback, useMemo, useRef, useState } from "react";
import type { Filter } from "../filter/index.js";
import type { Action } from "./keys.js";
import { PayloadSearch, type SearchProgress, hasPayloadTerm } from "./payload-search.js";
import { type SessionWindow, edge, stepFrom, windowAround } from "./session-window.js";
import type { SessionSource, TlsRow } from "./types.js";

export interface SessionListOptions {
  readonly source: SessionSource;
  readonly filter: Filter | undefined;
  /** Start in follow mode (the newest session selected as sessions arrive). */
  readonly follow: boolean;
  /** Rows the list takes on screen, its header included. */
  readonly height: number;
  /** Bumped by every poll. */
  readonly tick: number;
  readonly now: number;
}

export interface SessionListState {
  readonly window: SessionWindow;
  /** The tls rows of the window's sessions that have one. */
  readonly tls: ReadonlyMap<number, TlsRow>;
  /** Sessions the filter shows (counted once a second). */
  readonly shown: number;
  /** A payload filter's search while it has sessions left to search. */
  readonly searching: SearchProgress | undefined;
  /** Why the list cannot be shown (a failing query or search step). */
  readonly error: string | undefined;
  readonly follow: boolean;
  /** The selected session as keys moved it (ahead of the next render). */
  current(): number | undefined;
  /** Selects `id` at screen row `position` (clamped to the list) and leaves follow mode. */
  select(id: number | undefined, position: number): void;
  /** One row or one page from the selection. */
  move(direction: Extract<Action, "down" | "up" | "pageDown" | "pageUp">): void;
  /** The oldest or the newest session. */
  toEdge(which: "first" | "last"): void;
  /** Follow mode on, or off with the selection kept where it is. */
  toggleFollow(): void;
  /** Hides a session from this view (`d`). */
  hide(id: number): void;
}

const NO_TLS: ReadonlyMap<number, TlsRow> = new Map();

export function useSessionList(options: SessionListOptions): SessionListState {
  const { source, filter, height, tick, now } = options;
  const [follow, setFollow] = useState(options.follow);
  const [selectedId, setSelectedId] = useState<number | undefined>(undefined);
  const [position, setPosition] = useState(Number.MAX_SAFE_INTEGER);
  const [hidden, setHidden] = useState<ReadonlySet<number>>(new Set());

  // `listSource`/`listFilter` are what the list's queries use: a payload filter's search, or the capture and the filter.
  const search = useMemo(() => (filter !== undefined && hasPayloadTerm(filter) ? new PayloadSearch(source, filter) : undefined), [source, filter]);
  const listSource = search ?? source;
  const listFilter = search === undefined ? filter : undefined;
  // One bounded step of the search per poll (and one when the filter is applied).
  // biome-ignore lint/correctness/useExhaustiveDependencies: one search step per poll: `tick` is the trigger, and `now` is read at that moment
  const searchError = useMemo(() => {
    try {
      search?.step(now);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }, [search, tick]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `tick` re-queries on every poll; `now` is that poll's time
  const window: SessionWindow & { tls: ReadonlyMap<number, TlsRow>; error?: string } = useMemo(() => {
    try {
      const rows = windowAround(listSource, {
        ...(listFilter === undefined ? {} : { filter: listFilter }),
        selectedId: follow ? undefined : selectedId,
        position: follow ? height - 1 : position,
        height: height - 1,
        hidden,
        now,
      });
      // From the capture even under a payload search (which has no tls rows of its own).
      return { ...rows, tls: source.tlsFor?.(rows.rows.map((r) => r.id)) ?? NO_TLS };
    } catch (err) {
      return { rows: [], selectedId: undefined, position: 0, tls: NO_TLS, error: (err as Error).message };
    }
    // `tick` re-queries on every poll.
  }, [source, listSource, listFilter, follow, selectedId, position, height, hidden, tick]);

  // biome-ignore lint/correctness/useExhaustiveDependencies: counted once a second (`tick / 10`), not on every poll
  const shown = useMemo(() => {
    try {
      return listSource.count(listFilter === undefined ? {} : { filter: listFilter, now });
    } catch {
      return 0;
    }
    // Counting is cheap on an indexed table but not free: once a second is plenty.
  }, [listSource, listFilter, Math.floor(tick / 10)]);

  const cursor = useRef({ id: window.selectedId, position: window.position });
  cursor.current = { id: window.selectedId, position: window.position };
  const select = useCallback(
    (id: number | undefined, nextPosition: number) => {
      const position = Math.max(0, Math.min(height - 2, nextPosition));
      cursor.current = { id, position };
      setFollow(false);
      setSelectedId(id);
      setPosition(position);
    },
    [height],
  );

  const progress = search?.progress();
  return {
    window,
    tls: window.tls,
    shown,
    searching: progress !== undefined && progress.searched < progress.total ? progress : undefined,
    error: searchError ?? window.error,
    follow,
    current: () => cursor.current.id,
    select,
    move: (direction) => {
      const current = cursor.current.id;
      if (current === undefined) return;
      const page = height - 2;
      const steps = direction === "down" ? 1 : direction === "up" ? -1 : direction === "pageDown" ? page : -page;
      const next = stepFrom(listSource, listFilter, hidden, current, steps, now);
      select(next, cursor.current.position + Math.sign(steps) * Math.min(Math.abs(steps), 1));
    },
    toEdge: (which) => select(edge(listSource, listFilter, hidden, which, now), which === "first" ? 0 : height),
    toggleFollow: () => {
      setFollow(!follow);
      if (follow) setSelectedId(cursor.current.id);
    },
    hide: (id) => setHidden(new Set([...hidden, id])),
  };
}
