/**
 * The TUI: a session list over a capture (live while the proxy writes it, or a file), a filter
 * bar, a detail view, a status bar and a help overlay. State and loading live here; the views in
 * ./views are pure. The capture is polled at most 10 times a second, and only the rows on screen
 * are read (session-window.ts), so a file of 100,000 sessions and a proxy at full speed both stay
 * responsive.
 */
import { writeFileSync } from "node:fs";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { Box, useApp, useInput, useStdout, type Key } from "ink";
import { FilterError, parseFilter, type Filter } from "../filter/index.js";
import { chunkJson, datagramJson, eventJson, sessionJson } from "../store/json.js";
import { BINDINGS, actionFor } from "./keys.js";
import { edge, stepFrom, windowAround, type SessionWindow } from "./session-window.js";
import type { CaptureStats, DetailTab, LiveStatus, SessionSource, ViewMode } from "./types.js";
import { EmptyState, ErrorState, FilterBar, HelpOverlay, SessionDetail, SessionList, StatusBar, detailLines, type ReplayComparison } from "./views/index.js";
import { firstDifference, firstDifferingAnswer, sideOf, turnsOf } from "../replay/turns.js";

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
  const window: SessionWindow & { error?: string } = useMemo(() => {
    try {
      return windowAround(source, { ...(filter === undefined ? {} : { filter }), selectedId: follow ? undefined : selectedId, position: follow ? listHeight - 1 : position, height: listHeight - 1, hidden, now });
    } catch (err) {
      return { rows: [], selectedId: undefined, position: 0, error: (err as Error).message };
    }
    // `tick` re-queries on every poll.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [source, filter, follow, selectedId, position, listHeight, hidden, tick]);

  useEffect(() => {
    if (stats !== undefined && Date.now() - lastStats.current < 1000) return;
    lastStats.current = Date.now();
    try {
      setStats(source.stats());
    } catch (err) {
      setFailure((err as Error).message);
    }
  }, [source, tick, stats]);

  const shown = useMemo(() => {
    try {
      return source.count(filter === undefined ? {} : { filter, now });
    } catch {
      return 0;
    }
    // Counting is cheap on an indexed table but not free: once a second is plenty.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [source, filter, Math.floor(tick / 10)]);

  const detailData = useMemo(() => {
    if (detail === undefined) return undefined;
    const session = source.session(detail.id);
    if (session === undefined) return undefined;
    const chunks = [...source.chunks(detail.id)];
    // A replay is shown against its original: the answer then and now.
    let comparison: ReplayComparison | undefined;
    if (session.replay_of !== null && session.command === "udp" && source.session(session.replay_of) !== undefined) {
      const answers = (id: number) => [...source.datagrams(id)].filter((g) => g.direction === "down" && g.verdict !== "dropped").map((g) => g.sent ?? g.data);
      const expected = answers(session.replay_of);
      const received = answers(detail.id);
      const answer = firstDifferingAnswer(expected, received);
      const difference = answer === undefined ? undefined : firstDifference(expected[answer] ?? Buffer.alloc(0), received[answer] ?? Buffer.alloc(0));
      const bytes = (list: Buffer[]) => list.reduce((n, b) => n + b.length, 0);
      comparison = {
        expected: bytes(expected),
        received: bytes(received),
        ...(difference === undefined ? {} : { difference }),
        datagrams: { expected: expected.length, received: received.length, ...(answer === undefined ? {} : { answer }) },
      };
    } else if (session.replay_of !== null && source.session(session.replay_of) !== undefined) {
      const expected = sideOf(turnsOf(source.chunks(session.replay_of)), "down");
      const received = sideOf(turnsOf(chunks), "down");
      const difference = firstDifference(expected, received);
      comparison = { expected: expected.length, received: received.length, ...(difference === undefined ? {} : { difference }) };
    }
    return { session, events: source.events(detail.id), chunks, datagrams: [...source.datagrams(detail.id)], ...(comparison === undefined ? {} : { comparison }) };
    // Re-read while the session is open: its bytes are still arriving.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [source, detail?.id, tick]);

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

  const exportSession = (id: number) => {
    const session = source.session(id);
    if (session === undefined) return;
    const file = `${props.exportDir ?? "."}/socksmith-${id}.json`;
    const doc = {
      ...sessionJson(session),
      events: source.events(id).map(eventJson),
      chunks: [...source.chunks(id)].map(chunkJson),
      datagrams: [...source.datagrams(id)].map(datagramJson),
    };
    try {
      writeFileSync(file, JSON.stringify(doc, null, 2) + "\n", { mode: 0o600 });
      setMessage(`exported session ${id} to ${file}`);
    } catch (err) {
      setMessage(`export failed: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
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
    setMessage(undefined);
    const current = cursor.current.id;
    if (detail !== undefined && detailData !== undefined) {
      const total = detailLines({ ...detailData, tab: detail.tab, mode, scroll: 0, width: size.columns, height: size.rows }).length;
      const page = Math.max(1, size.rows - 4);
      const scrollTo = (n: number) => setDetail({ ...detail, scroll: Math.max(0, Math.min(Math.max(0, total - page), n)) });
      switch (action) {
        case "down":
          return scrollTo(detail.scroll + 1);
        case "up":
          return scrollTo(detail.scroll - 1);
        case "pageDown":
          return scrollTo(detail.scroll + page);
        case "pageUp":
          return scrollTo(detail.scroll - page);
        case "first":
          return scrollTo(0);
        case "last":
          return scrollTo(total);
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
        const next = stepFrom(source, filter, hidden, current, steps, now);
        return select(next, cursor.current.position + Math.sign(steps) * Math.min(Math.abs(steps), 1));
      }
      case "first":
        return select(edge(source, filter, hidden, "first", now), 0);
      case "last":
        return select(edge(source, filter, hidden, "last", now), listHeight);
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
        if (props.replay === undefined) return setMessage("replay is not available here");
        setMessage(`replaying session ${current}…`);
        void props.replay(current).then(
          (outcome) => {
            setMessage(outcome.message);
            if (outcome.focus === undefined) return;
            select(outcome.focus, listHeight);
            setDetail({ id: outcome.focus, tab: "overview", scroll: 0 });
          },
          (err: Error) => setMessage(`replay failed: ${err.message}`),
        );
        return;
      case "export":
        if (current !== undefined) exportSession(current);
        return;
      case "hide":
        if (current === undefined) return;
        setHidden(new Set([...hidden, current]));
        setMessage(`session ${current} hidden from this view`);
        return;
      case "help":
        return setHelp(true);
      case "quit":
        return exit();
      case "nextTab":
        return;
    }
  }

  const live = props.live?.();
  const status = (
    <StatusBar
      file={source.file}
      stats={stats ?? { sessions: 0, open: 0, failed: 0, denied: 0, bytes: 0, fileBytes: 0 }}
      {...(live === undefined ? {} : { live })}
      {...(filterText === "" ? {} : { filter: filterText })}
      shown={shown}
      follow={follow}
      {...(message === undefined ? {} : { message })}
    />
  );

  if (help) return <HelpOverlay bindings={BINDINGS} />;
  const problem = failure ?? window.error;
  if (problem !== undefined) return <ErrorState message={problem} />;
  if (detail !== undefined && detailData !== undefined) {
    return (
      <Box flexDirection="column" height={size.rows - 1}>
        <SessionDetail {...detailData} tab={detail.tab} mode={mode} scroll={detail.scroll} width={size.columns} height={size.rows - 3} />
        {status}
      </Box>
    );
  }
  // One row short of the terminal: a frame as tall as the screen makes Ink redraw it whole.
  return (
    <Box flexDirection="column" height={size.rows - 1}>
      <Box flexDirection="column" flexGrow={1}>
        {window.rows.length === 0 ? (
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
