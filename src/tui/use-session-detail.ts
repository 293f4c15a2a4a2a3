/**
 * The detail view's loading (docs/architecture.md, "Conventions": state and loading live in
 * hooks): the open session's row, a DetailWindow for the tab shown, the tab's lines, and a
 * replay's comparison. What the keys change (the request, the mode) is use-open-session.ts's.
 *
 * Contract (the TUI runs on the relay's thread):
 * - Per poll it reads the session's row, and while the session is open, its label counts (index
 *   ranges capped at COUNT_CAP) and one forward step of the window when the window is at the end.
 * - Loading steps (the window, the comparison) run one per macrotask (setImmediate), each bounded
 *   (detail-window.ts), so keys and the relay get the event loop between them.
 * - The window holds what is on screen plus about two pages either side; past MAX_WINDOW_ITEMS
 *   items or MAX_WINDOW_BYTES of payload it drops what is far off screen, and the scroll is moved
 *   by the lines of what changed at the front, so what is on screen stays in place.
 */
import { useEffect, useMemo, useRef, useState } from "react";
import { DetailWindow, type StepResult, type WindowItem, type WindowKind, type WindowRow } from "./detail-window.js";
import { ReplayComparer } from "./replay-compare.js";
import type { DetailTab, EventRow, SessionRow, SessionSource, ShownChunk, ShownDatagram, ViewMode } from "./types.js";
import { WINDOW_MARKERS, detailLines, type DetailContent, type DetailLine, type ReplayComparison } from "./views/index.js";

/** Label counts stop at this many rows ("10000+"). */
export const COUNT_CAP = 10_000;
export const MAX_WINDOW_ITEMS = 300;
export const MAX_WINDOW_BYTES = 2 * 1024 * 1024;
const GROWING_DRAW_MS = 250;

export interface DetailRequest {
  readonly id: number;
  readonly tab: DetailTab;
  readonly scroll: number;
}

export interface SessionDetailState {
  readonly content: DetailContent;
  readonly lines: readonly DetailLine[];
  /** The first line shown (the request's, or the last page when pinned to the bottom). */
  readonly scroll: number;
  /** Content lines per page. */
  readonly page: number;
  /** Moves to the first line, loading the session's start if the window is elsewhere. */
  first(): void;
  /** Moves to the last page, loading the session's end if the window is elsewhere. */
  last(): void;
  /** Ends following the bottom after `last` (any other key): the caller sets its scroll from `scroll`. */
  release(): void;
}

interface Options {
  readonly source: SessionSource;
  readonly detail: DetailRequest | undefined;
  readonly mode: ViewMode;
  readonly width: number;
  /** Content lines per page. */
  readonly page: number;
  /** Bumped by every poll. */
  readonly tick: number;
  readonly now: number;
  /** Moves the request's scroll by `delta` lines (to keep what is on screen in place). */
  readonly shift: (delta: number) => void;
}

function kindOf(tab: DetailTab, session: SessionRow): WindowKind | undefined {
  switch (tab) {
    case "overview":
      return undefined;
    case "events":
      return "events";
    case "stream":
      return session.command === "udp" ? "datagrams" : "turns";
    default: {
      const never: never = tab;
      return never;
    }
  }
}

const countText = (n: number) => (n > COUNT_CAP ? `${COUNT_CAP}+` : String(n));

export function useSessionDetail(options: Options): SessionDetailState | undefined {
  const { source, detail, mode, width, page, tick, now } = options;
  const [, setVersion] = useState(0);
  const rerender = () => setVersion((v) => v + 1);
  const held = useRef<{ key: string; window: DetailWindow } | undefined>(undefined);
  const pinned = useRef(false);
  const polledOpen = useRef(false);
  const drawnAt = useRef(0);

  // biome-ignore lint/correctness/useExhaustiveDependencies: the row is read again on every poll (`tick`): an open session's counters and status change
  const session = useMemo(
    () => (detail === undefined ? undefined : source.session(detail.id)),
    // The row is read again on every poll: an open session's counters and status change.
    [source, detail?.id, tick],
  );
  const open = session?.status === "open";

  const kind = detail === undefined || session === undefined ? undefined : kindOf(detail.tab, session);
  const key = kind === undefined ? undefined : `${detail!.id}:${kind}`;
  if (held.current?.key !== key) {
    held.current = key === undefined ? undefined : { key, window: new DetailWindow(source, detail!.id, kind!) };
    pinned.current = false;
    polledOpen.current = true;
  }
  const win = held.current?.window;

  // biome-ignore lint/correctness/useExhaustiveDependencies: counted again on each poll only while the session is open
  const counts = useMemo(() => {
    if (session === undefined) return undefined;
    return {
      events: countText(source.rowCount("events", session.id, COUNT_CAP + 1)),
      datagrams: session.command === "udp" ? countText(source.rowCount("datagrams", session.id, COUNT_CAP + 1)) : "",
    };
    // Counted again on each poll only while the session is open.
  }, [source, session?.id, open ? tick : -1]);

  // The TLS facts come before the relay starts; read again on each poll only while the session is open.
  // biome-ignore lint/correctness/useExhaustiveDependencies: read again on each poll only while the session is open
  const tls = useMemo(() => (session === undefined ? undefined : source.tls?.(session.id)), [source, session?.id, open ? tick : -1]);

  // A replay's comparison with its original, in steps, while the overview shows it.
  const comparing = useRef<{ key: string; comparer: ReplayComparer; result: ReplayComparison } | undefined>(undefined);
  const compareKey =
    session === undefined || session.replay_of === null || detail?.tab !== "overview"
      ? undefined
      : `${session.id}:${session.replay_of}:${session.status}:${session.closed_at}`;
  if (compareKey !== undefined && comparing.current?.key !== compareKey) {
    const original = source.session(session!.replay_of!);
    if (original === undefined) comparing.current = undefined;
    else {
      const comparer = new ReplayComparer(source, original.id, session!.id, session!.command === "udp");
      // One bounded step now: a small replay is compared before its overview is first drawn.
      comparer.step();
      comparing.current = { key: compareKey, comparer, result: comparer.result() };
    }
  }
  const comparison = compareKey !== undefined && comparing.current?.key === compareKey ? comparing.current.result : undefined;
  useEffect(() => {
    const job = comparing.current;
    if (job === undefined || job.key !== compareKey || job.result.pending !== true) return;
    const handle = setImmediate(() => {
      job.comparer.step();
      job.result = job.comparer.result();
      rerender();
    });
    return () => clearImmediate(handle);
  });

  const version = win?.version ?? -1;
  // biome-ignore lint/correctness/useExhaustiveDependencies: the window is mutable: `version` changes whenever its rows do
  const rows = useMemo(() => (win === undefined ? [] : win.rows()), [win, version]);
  // biome-ignore lint/correctness/useExhaustiveDependencies: the lines of the events and stream tabs do not depend on the session's counters: not rebuilt on every poll
  const content: DetailContent | undefined = useMemo(() => {
    if (detail === undefined || session === undefined) return undefined;
    const turnsKnown = win !== undefined && kind === "turns" && !win.earlier && !win.later ? String(win.items.length) : "";
    return {
      session,
      events: kind === "events" ? (rows as EventRow[]) : [],
      chunks: kind === "turns" ? (rows as ShownChunk[]) : [],
      datagrams: kind === "datagrams" ? (rows as ShownDatagram[]) : [],
      tab: detail.tab,
      mode,
      width,
      now,
      ...(comparison === undefined ? {} : { comparison }),
      ...(tls === undefined ? {} : { tls }),
      ...(win === undefined ? {} : { more: { earlier: win.earlier, later: win.later } }),
      counts: { events: counts?.events ?? "", stream: session.command === "udp" ? (counts?.datagrams ?? "") : turnsKnown },
    };
    // Lines of the events and stream tabs do not depend on the session's counters: not rebuilt on every poll.
  }, [
    detail?.id,
    detail?.tab,
    detail?.tab === "overview" ? session : session?.command,
    rows,
    mode,
    width,
    comparison,
    tls,
    counts,
    detail?.tab === "overview" ? now : 0,
    win?.earlier,
    win?.later,
  ]);
  // Lines item by item, each kept until the item, the mode or the width changes: a step that adds
  // one turn, or a poll that adds a read, does not rebuild the lines of the rest.
  const cache = useRef(new WeakMap<WindowItem, { rows: number; tail: unknown; mode: ViewMode; width: number; lines: readonly DetailLine[] }>());
  const itemLines = (item: WindowItem): readonly DetailLine[] => {
    const tail = item.rows[item.rows.length - 1];
    const hit = cache.current.get(item);
    if (hit !== undefined && hit.rows === item.rows.length && hit.tail === tail && hit.mode === mode && hit.width === width) return hit.lines;
    const lines = detailLines({ ...content!, ...rowsFor(item.rows), more: { earlier: false, later: false } });
    cache.current.set(item, { rows: item.rows.length, tail, mode, width, lines });
    return lines;
  };
  const rowsFor = (its: readonly WindowRow[]) => ({
    events: kind === "events" ? (its as EventRow[]) : [],
    chunks: kind === "turns" ? (its as ShownChunk[]) : [],
    datagrams: kind === "datagrams" ? (its as ShownDatagram[]) : [],
  });
  // biome-ignore lint/correctness/useExhaustiveDependencies: rebuilt when `content` is: the window's items are read through it, and item lines are cached per item
  const lines = useMemo((): readonly DetailLine[] => {
    if (content === undefined) return [];
    // The overview, and a window that is all there is and holds nothing ("(no bytes)").
    if (win === undefined || (win.items.length === 0 && !win.earlier && !win.later))
      return detailLines({ ...content, ...(win === undefined ? {} : { more: undefined }) });
    return [...(win.earlier ? [WINDOW_MARKERS.earlier] : []), ...win.items.flatMap(itemLines), ...(win.later ? [WINDOW_MARKERS.later] : [])];
  }, [content]);

  const maxScroll = Math.max(0, lines.length - page);
  const scroll = pinned.current && win !== undefined && !win.later ? maxScroll : Math.max(0, Math.min(detail?.scroll ?? 0, maxScroll));

  /** Lines of these items on their own (each item's lines do not depend on its neighbours). */
  const measure = (items: readonly WindowItem[]): number => (content === undefined ? 0 : items.reduce((n, item) => n + itemLines(item).length, 0));
  const apply = (w: DetailWindow, result: StepResult) => {
    const front = result.front;
    if (front !== undefined && !pinned.current) {
      const marker = (w.earlier ? 1 : 0) - (front.earlierBefore ? 1 : 0);
      const delta = (front.added ? measure(front.items) : -measure(front.items)) + marker;
      if (delta !== 0) options.shift(delta);
    }
    rerender();
  };

  // Loading: one bounded step per macrotask while the window does not cover what is wanted.
  useEffect(() => {
    const w = win;
    if (w === undefined || detail === undefined) return;
    const wantForward = scroll + 2 * page >= lines.length;
    const wantBackward = w.busy || (w.earlier && (scroll < page || w.items.length === 0));
    let step: (() => StepResult) | undefined;
    if (wantBackward) step = () => w.backward();
    else if (w.later && (wantForward || w.growing)) step = () => w.forward(wantForward);
    else if (w.items.length > MAX_WINDOW_ITEMS || w.bytes > MAX_WINDOW_BYTES) {
      const cut = trimmable(w);
      if (cut.front > 0) step = () => w.trimFront(cut.front);
      else if (cut.back > 0)
        step = () => {
          w.trimBack(cut.back);
          return {};
        };
    }
    if (step === undefined) return;
    const run = step;
    // Counting the reads of a long turn changes only its header: steps go on without drawing
    // (each still one macrotask), and the header is drawn again every GROWING_DRAW_MS.
    const growingOnly = !wantBackward && !wantForward && w.later;
    let handle: NodeJS.Immediate | undefined;
    const once = () => {
      const result = run();
      if (growingOnly && w.growing && result.front === undefined && Date.now() - drawnAt.current < GROWING_DRAW_MS) {
        handle = setImmediate(once);
        return;
      }
      drawnAt.current = Date.now();
      apply(w, result);
    };
    handle = setImmediate(once);
    return () => clearImmediate(handle);
  });

  /** How many items lie far from the screen: more than two pages above it, more than three below. */
  const trimmable = (w: DetailWindow): { front: number; back: number } => {
    const sizes = w.items.map((item) => measure([item]));
    let line = w.earlier ? 1 : 0;
    let front = 0;
    while (front < sizes.length - 1 && line + sizes[front]! <= scroll - 2 * page) line += sizes[front++]!;
    let end = (w.earlier ? 1 : 0) + sizes.slice(0, front).reduce((n, s) => n + s, 0);
    let keep = front;
    while (keep < sizes.length && end <= scroll + 3 * page) end += sizes[keep++]!;
    return { front, back: Math.max(0, sizes.length - Math.max(keep, front + 1)) };
  };

  // Polling a live session: what the capture adds at the end, when the window is at the end.
  // biome-ignore lint/correctness/useExhaustiveDependencies: one poll of a live session per `tick`, reading the window and scroll as they are then
  useEffect(() => {
    const w = win;
    if (w === undefined || w.later) return;
    // One more poll after it closed: its last rows may land with the close.
    if (!open && !polledOpen.current) return;
    polledOpen.current = open;
    apply(w, w.forward(scroll + 2 * page >= lines.length));
  }, [tick]);

  if (detail === undefined || content === undefined) return undefined;
  return {
    content,
    lines,
    scroll,
    page,
    first: () => {
      pinned.current = false;
      if (win?.earlier === true) win.resetStart();
      options.shift(-Number.MAX_SAFE_INTEGER);
      rerender();
    },
    last: () => {
      if (win?.later) {
        win.resetEnd();
        pinned.current = true;
      } else {
        options.shift(Number.MAX_SAFE_INTEGER);
      }
      rerender();
    },
    release: () => {
      pinned.current = false;
    },
  };
}
