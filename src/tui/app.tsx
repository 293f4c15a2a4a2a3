/**
 * The TUI: a session list over a capture (live while the proxy writes it, or a file), a filter
 * bar, a detail view, a status bar and a help overlay. State and loading live here; the views in
 * ./views are pure. The capture is polled at most 10 times a second, and only the rows on screen
 * are read (session-window.ts), so a file of 100,000 sessions and a proxy at full speed both stay
 * responsive. The TUI shares the relay's thread (SQLite reads are synchronous): an open session is
 * read through a bounded window that loads in bounded steps (use-session-detail.ts), and `e`
 * exports in pages, asynchronously (export-session.ts). Nothing here reads a whole session. A
 * filter on payload (`~`) is searched in bounded steps, one per poll (payload-search.ts).
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Box, useApp, useInput, useStdout, type Key } from "ink";
import { FilterError, parseFilter, type Filter } from "../filter/index.js";
import { BINDINGS, actionFor } from "./keys.js";
import { edge, stepFrom, windowAround, type SessionWindow } from "./session-window.js";
import type { CaptureStats, DetailTab, LiveStatus, SessionSource, ViewMode } from "./types.js";
import { EmptyState, ErrorState, FilterBar, HelpOverlay, SessionDetail, SessionList, StatusBar, detailPageSize } from "./views/index.js";
import { exportSession } from "./export-session.js";
import { MESSAGE_MS, visibleNotes } from "./notes.js";
import { useSessionDetail } from "./use-session-detail.js";
import { PayloadSearch, hasPayloadTerm } from "./payload-search.js";

export interface AppProps {
  readonly source: SessionSource;
  /** Present when attached to a running proxy. */
  readonly live?: () => LiveStatus;
  /** Start in follow mode (newest session selected as sessions arrive). */
  readonly follow?: boolean;
  /** Where `e` writes exports (default: the working directory). */
  readonly exportDir?: string;
  /** Milliseconds between polls (default 100: at most 10 renders a second from new data). */
  readonly pollMs?: number;
  /** Called for `r` on a session; resolves with a message for the status bar and the new session to focus. */
  readonly replay?: (sessionId: number) => Promise<{ readonly message: string; readonly focus?: number }>;
}

interface Editing {
  readonly text: string;
  readonly error?: { column: number; message: string };
}

const DETAIL_TABS: readonly DetailTab[] = ["overview", "events", "stream"];
const VIEW_MODES: readonly ViewMode[] = ["auto", "text", "hex"];

export function App(props: AppProps) {
  const { source } = props;
  const { exit } = useApp();
  const { stdout } = useStdout();
  const [size, setSize] = useState({ columns: stdout.columns || 100, rows: stdout.rows || 30 });
  const [tick, setTick] = useState(0);
  const [follow, setFollow] = useState(props.follow ?? props.live !== undefined);
  const [selectedId, setSelectedId] = useState<number | undefined>(undefined);
  const [position, setPosition] = useState(Number.MAX_SAFE_INTEGER);
  const [filterText, setFilterText] = useState("");
  const [filter, setFilter] = useState<Filter | undefined>(undefined);
  const [editing, setEditingState] = useState<Editing | undefined>(undefined);
  // Keys can arrive faster than React re-renders (a paste, tmux send-keys): the input handler
  // reads the filter bar's latest state from this ref, not from its render's closure.
  const editingRef = useRef<Editing | undefined>(undefined);
  const setEditing = (next: Editing | undefined) => {
    editingRef.current = next;
    setEditingState(next);
  };
  const [hidden, setHidden] = useState<ReadonlySet<number>>(new Set());
  const [detail, setDetail] = useState<{ id: number; tab: DetailTab; scroll: number } | undefined>(undefined);
  const [mode, setMode] = useState<ViewMode>("auto");
  const [help, setHelp] = useState(false);
  const [message, setMessage] = useState<string | undefined>(undefined);
  const [stats, setStats] = useState<CaptureStats | undefined>(undefined);
  const [failure, setFailure] = useState<string | undefined>(undefined);
  const lastStats = useRef(0);
  // When the message was set (it clears after MESSAGE_MS), the last key press (it dismisses notes), the export running.
  const messageAt = useRef(0);
  const dismissedAt = useRef(0);
  const exporting = useRef<number | undefined>(undefined);

  useEffect(() => {
    const onResize = () => setSize({ columns: stdout.columns || 100, rows: stdout.rows || 30 });
    stdout.on("resize", onResize);
    return () => void stdout.off("resize", onResize);
  }, [stdout]);

  // Poll: new sessions, changed rows, stats (at most once a second: counting is the costly part).
  useEffect(() => {
    const timer = setInterval(() => setTick((t) => t + 1), props.pollMs ?? 100);
    return () => clearInterval(timer);
  }, [props.pollMs]);

  const now = Date.now();
  // Room for the status bar (up to two lines) and the filter bar when it is open.
  const listHeight = Math.max(3, size.rows - (editing !== undefined ? 6 : 4));
  // A filter with `~` terms would read payload in SQL, unbounded, on every poll: the list goes
  // through a search that reads a bounded amount per poll instead (payload-search.ts), and
  // `listSource`/`listFilter` are what the list's queries use.
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
  const window: SessionWindow & { error?: string } = useMemo(() => {
    try {
      return windowAround(listSource, {
        ...(listFilter === undefined ? {} : { filter: listFilter }),
        selectedId: follow ? undefined : selectedId,
        position: follow ? listHeight - 1 : position,
        height: listHeight - 1,
        hidden,
        now,
      });
    } catch (err) {
      return { rows: [], selectedId: undefined, position: 0, error: (err as Error).message };
    }
    // `tick` re-queries on every poll.
  }, [listSource, listFilter, follow, selectedId, position, listHeight, hidden, tick]);

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

  // biome-ignore lint/correctness/useExhaustiveDependencies: counted once a second (`tick / 10`), not on every poll
  const shown = useMemo(() => {
    try {
      return listSource.count(listFilter === undefined ? {} : { filter: listFilter, now });
    } catch {
      return 0;
    }
    // Counting is cheap on an indexed table but not free: once a second is plenty.
  }, [listSource, listFilter, Math.floor(tick / 10)]);

  const shift = useCallback((delta: number) => setDetail((d) => (d === undefined ? d : { ...d, scroll: Math.max(0, d.scroll + delta) })), []);
  const detailState = useSessionDetail({ source, detail, mode, width: size.columns, page: detailPageSize(size.rows - 3), tick, now, shift });

  // The selection as keys move it, ahead of the next render (keys can come several per read).
  const cursor = useRef({ id: window.selectedId, position: window.position });
  cursor.current = { id: window.selectedId, position: window.position };
  const select = useCallback(
    (id: number | undefined, nextPosition: number) => {
      const position = Math.max(0, Math.min(listHeight - 2, nextPosition));
      cursor.current = { id, position };
      setFollow(false);
      setSelectedId(id);
      setPosition(position);
    },
    [listHeight],
  );

  const applyFilter = (text: string): boolean => {
    try {
      const parsed = text.trim() === "" ? undefined : parseFilter(text);
      setFilter(parsed);
      setFilterText(text.trim());
      setEditing(undefined);
      return true;
    } catch (err) {
      if (err instanceof FilterError) setEditing({ text, error: { column: err.column, message: err.message } });
      else setEditing({ text, error: { column: 1, message: (err as Error).message } });
      return false;
    }
  };

  const say = (text: string | undefined) => {
    messageAt.current = Date.now();
    setMessage(text);
  };

  /** `e`: the session to socksmith-ID.json, streamed in pages (export-session.ts); one export at a time. */
  const exportOne = (id: number) => {
    if (exporting.current !== undefined) return say(`still exporting session ${exporting.current}`);
    const file = `${props.exportDir ?? "."}/socksmith-${id}.json`;
    exporting.current = id;
    say(`exporting session ${id} to ${file}…`);
    exportSession(source, id, file).then(
      () => say(`exported session ${id} to ${file}`),
      (err: NodeJS.ErrnoException) => say(`export failed: ${err.code ?? err.message}`),
    ).finally(() => {
      exporting.current = undefined;
    });
  };

  useInput((input, key) => keys(input, key));

  /** Several keys can arrive in one read (fast typing, a paste, tmux): one action per character, and once `/` opens the filter bar the rest is its text. */
  function keys(input: string, key: Key): void {
    if (input.length > 1 && editingRef.current === undefined && !key.ctrl && !key.meta) {
      const plain = { ...key, return: false, tab: false, escape: false };
      for (let i = 0; i < input.length; i++) {
        const c = input[i]!;
        handle(c, { ...plain, return: c === "\r", tab: c === "\t" });
        if (editingRef.current !== undefined && i + 1 < input.length) return handle(input.slice(i + 1), plain);
      }
      return;
    }
    handle(input, key);
  }

  function handle(input: string, key: Key): void {
    const editing = editingRef.current;
    if (editing !== undefined) {
      if (key.escape) return setEditing(undefined);
      if (key.return) return void applyFilter(editing.text);
      if (key.backspace || key.delete) return setEditing({ text: editing.text.slice(0, -1) });
      if (key.ctrl && input === "u") return setEditing({ text: "" });
      if (key.ctrl || key.meta) return;
      // Typed or pasted text, which may hold editing keys of its own: enter applies (and what
      // follows is keys again), ctrl-U clears, DEL/BS erase, other control characters are dropped.
      let text = editing.text;
      for (let i = 0; i < input.length; i++) {
        const c = input[i]!;
        if (c === "\r" || c === "\n") {
          if (applyFilter(text) && i + 1 < input.length) keys(input.slice(i + 1), key);
          return;
        }
        if (c === "\x15") text = "";
        else if (c === "\x7f" || c === "\b") text = text.slice(0, -1);
        else if (c >= " ") text += c;
      }
      setEditing({ text });
      return;
    }
    const action = actionFor(input, key);
    if (action === undefined) return;
    if (help) {
      if (action === "back" || action === "help") setHelp(false);
      else if (action === "quit") exit();
      return;
    }
    // A key dismisses the messages and notes on screen (errors about the proxy's state stay).
    setMessage(undefined);
    dismissedAt.current = Date.now();
    const current = cursor.current.id;
    if (detail !== undefined && detailState !== undefined) {
      const total = detailState.lines.length;
      const page = detailState.page;
      const from = detailState.scroll;
      const scrollTo = (n: number) => {
        detailState.release();
        setDetail({ ...detail, scroll: Math.max(0, Math.min(Math.max(0, total - page), n)) });
      };
      switch (action) {
        case "down":
          return scrollTo(from + 1);
        case "up":
          return scrollTo(from - 1);
        case "pageDown":
          return scrollTo(from + page);
        case "pageUp":
          return scrollTo(from - page);
        case "first":
          return detailState.first();
        case "last":
          return detailState.last();
        case "back":
          return setDetail(undefined);
        case "nextTab":
          return setDetail({ ...detail, tab: DETAIL_TABS[(DETAIL_TABS.indexOf(detail.tab) + 1) % DETAIL_TABS.length]!, scroll: 0 });
        default:
          break;
      }
    }
    switch (action) {
      case "down":
      case "up":
      case "pageDown":
      case "pageUp": {
        if (current === undefined) return;
        const steps = action === "down" ? 1 : action === "up" ? -1 : action === "pageDown" ? listHeight - 2 : -(listHeight - 2);
        const next = stepFrom(listSource, listFilter, hidden, current, steps, now);
        return select(next, cursor.current.position + Math.sign(steps) * Math.min(Math.abs(steps), 1));
      }
      case "first":
        return select(edge(listSource, listFilter, hidden, "first", now), 0);
      case "last":
        return select(edge(listSource, listFilter, hidden, "last", now), listHeight);
      case "open":
        if (current !== undefined) {
          // Straight to the bytes, unless there are none (a failed handshake): then the facts.
          const row = source.session(current);
          const empty = row === undefined || (row.command !== "udp" && row.bytes_up_received + row.bytes_down_received === 0);
          setDetail({ id: current, tab: empty ? "overview" : "stream", scroll: 0 });
        }
        return;
      case "back":
        if (filter !== undefined) {
          setFilter(undefined);
          setFilterText("");
          return;
        }
        return exit();
      case "filter":
        return setEditing({ text: filterText });
      case "follow":
        setFollow(!follow);
        if (follow) setSelectedId(current);
        return;
      case "viewMode":
        return setMode(VIEW_MODES[(VIEW_MODES.indexOf(mode) + 1) % VIEW_MODES.length]!);
      case "replay":
        if (current === undefined) return;
        if (props.replay === undefined) return say("replay is not available here");
        say(`replaying session ${current}…`);
        void props.replay(current).then(
          (outcome) => {
            say(outcome.message);
            if (outcome.focus === undefined) return;
            select(outcome.focus, listHeight);
            setDetail({ id: outcome.focus, tab: "overview", scroll: 0 });
          },
          (err: Error) => say(`replay failed: ${err.message}`),
        );
        return;
      case "export":
        if (current !== undefined) exportOne(current);
        return;
      case "hide":
        if (current === undefined) return;
        setHidden(new Set([...hidden, current]));
        say(`session ${current} hidden from this view`);
        return;
      case "help":
        return setHelp(true);
      case "quit":
        return exit();
      case "nextTab":
        return;
    }
  }

  const progress = search?.progress();
  const searching = progress !== undefined && progress.searched < progress.total ? progress : undefined;
  const reported = props.live?.();
  const live = reported === undefined ? undefined : visibleNotes(reported, Date.now(), dismissedAt.current);
  const showMessage = message !== undefined && Date.now() - messageAt.current < MESSAGE_MS ? message : undefined;
  const status = (
    <StatusBar
      file={source.file}
      stats={stats ?? { sessions: 0, open: 0, failed: 0, denied: 0, bytes: 0, fileBytes: 0 }}
      {...(live === undefined ? {} : { live })}
      {...(filterText === "" ? {} : { filter: filterText })}
      shown={shown}
      {...(searching === undefined ? {} : { searching })}
      follow={follow}
      {...(showMessage === undefined ? {} : { message: showMessage })}
    />
  );

  if (help) return <HelpOverlay bindings={BINDINGS} />;
  const problem = failure ?? searchError ?? window.error;
  if (problem !== undefined) return <ErrorState message={problem} />;
  if (detail !== undefined && detailState !== undefined) {
    return (
      <Box flexDirection="column" height={size.rows - 1}>
        <SessionDetail {...detailState.content} lines={detailState.lines} scroll={detailState.scroll} height={size.rows - 3} />
        {status}
      </Box>
    );
  }
  // One row short of the terminal: a frame as tall as the screen makes Ink redraw it whole.
  return (
    <Box flexDirection="column" height={size.rows - 1}>
      <Box flexDirection="column" flexGrow={1}>
        {/* While a payload filter is still searching, an empty list is not yet "no match": the header, and the status bar's progress. */}
        {window.rows.length === 0 && searching === undefined ? (
          <EmptyState kind={filter === undefined ? "no-sessions" : "no-match"} {...(live === undefined ? {} : { listen: live.listen })} />
        ) : (
          <SessionList rows={window.rows} selectedId={window.selectedId} width={size.columns} height={listHeight} now={now} />
        )}
      </Box>
      {editing !== undefined ? <FilterBar text={editing.text} cursor={editing.text.length} {...(editing.error === undefined ? {} : { error: editing.error })} /> : null}
      {status}
    </Box>
  );
}
