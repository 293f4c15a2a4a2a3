/**
 * The TUI: a session list over a capture (live while the proxy writes it, or a file), a filter
 * bar, a detail view, a status bar and a help overlay. App composes: state and loading live in
 * the use-*.ts hooks, the views in ./views are pure, and keys reach named actions through one
 * table (keys.ts, use-key-input.ts, use-actions.ts).
 *
 * The capture is polled at most 10 times a second (use-poll.ts), and only the rows on screen are
 * read (use-session-list.ts, session-window.ts), so a file of 100,000 sessions and a proxy at full
 * speed both stay responsive. The TUI shares the relay's thread (SQLite reads are synchronous): an
 * open session is read through a bounded window that loads in bounded steps (use-session-detail.ts),
 * and `e` exports in pages, asynchronously (export-session.ts). Nothing here reads a whole session.
 * A filter on payload (`~`) is searched in bounded steps, one per poll (payload-search.ts).
 * Attached to a proxy with interactive intercept, paused sessions are marked and counted, the open
 * one shows its paused item on top, and the intercept keys act through the queue (use-intercept.ts).
 */
import { Box, useApp } from "ink";
import { type InterceptBinding, pausedSessions } from "./intercept.js";
import { BINDINGS } from "./keys.js";
import type { LiveStatus, SessionSource } from "./types.js";
import { type Replay, useActions } from "./use-actions.js";
import { useCaptureStats } from "./use-capture-stats.js";
import { useExport } from "./use-export.js";
import { useFilterEditing } from "./use-filter-editing.js";
import { useIntercept } from "./use-intercept.js";
import { useKeyInput } from "./use-key-input.js";
import { useOpenSession } from "./use-open-session.js";
import { usePoll } from "./use-poll.js";
import { useSessionList } from "./use-session-list.js";
import { useStatusNotes } from "./use-status-notes.js";
import { useTerminalSize } from "./use-terminal-size.js";
import {
  EditingState,
  EmptyState,
  ErrorState,
  FilterBar,
  HelpOverlay,
  PausedBanner,
  pausedLines,
  RequestFormBar,
  SessionDetail,
  SessionList,
  StatusBar,
} from "./views/index.js";

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
  readonly replay?: Replay;
  /** Interactive intercept of the running proxy (absent: the intercept keys say it is not available). */
  readonly intercept?: InterceptBinding;
}

const NO_STATS = { sessions: 0, open: 0, failed: 0, denied: 0, bytes: 0, fileBytes: 0 };

export function App(props: AppProps) {
  const { source } = props;
  const { exit } = useApp();
  const size = useTerminalSize();
  const { tick, now } = usePoll(props.pollMs);
  const filterBar = useFilterEditing();
  const { editing, filter, filterText } = filterBar;
  // Room for the status bar (up to two lines) and the filter bar when it is open.
  const listHeight = Math.max(3, size.rows - (editing !== undefined ? 6 : 4));
  const list = useSessionList({ source, filter, follow: props.follow ?? props.live !== undefined, height: listHeight, tick, now });
  const { stats, failure } = useCaptureStats(source, tick);
  const opened = useOpenSession({ source, columns: size.columns, rows: size.rows, tick, now });
  const notes = useStatusNotes(props.live);
  const exportSession = useExport(source, props.exportDir ?? ".", notes.say);
  const intercept = useIntercept(props.intercept, source, notes.say);
  const { help, dispatch } = useActions({ list, filterBar, opened, notes, listHeight, exportSession, replay: props.replay, exit, intercept });
  // Whichever prompt is open takes the reads: the filter bar, the intercept filter, the request form.
  const prompts = [filterBar, intercept.promptInput, intercept.formInput];
  const promptInput = {
    isOpen: () => prompts.some((p) => p.isOpen()),
    key: (input: string, key: Parameters<typeof filterBar.key>[1]) => prompts.find((p) => p.isOpen())?.key(input, key),
  };
  const keyedSession = () => opened.detail?.content.session.id ?? list.current();
  useKeyInput(promptInput, dispatch, {
    active: () => !intercept.isEditing(),
    context: () => ({ paused: intercept.pausedAt(keyedSession()).length > 0 }),
  });

  const { live, message } = notes;
  const { window, searching, shown } = list;
  const status = (
    <StatusBar
      file={source.file}
      stats={stats ?? NO_STATS}
      {...(live === undefined ? {} : { live })}
      {...(filterText === "" ? {} : { filter: filterText })}
      shown={shown}
      {...(searching === undefined ? {} : { searching })}
      follow={list.follow}
      {...(message === undefined ? {} : { message })}
      {...(intercept.available ? { intercept: { filter: intercept.filterText, active: intercept.active, paused: intercept.items.length } } : {})}
    />
  );
  const prompt =
    intercept.form !== undefined ? (
      <RequestFormBar form={intercept.form} width={size.columns} />
    ) : intercept.prompt !== undefined ? (
      <FilterBar
        prompt="intercept "
        text={intercept.prompt.text}
        cursor={intercept.prompt.text.length}
        {...(intercept.prompt.error === undefined ? {} : { error: intercept.prompt.error })}
      />
    ) : undefined;

  // The editor has the terminal: one frame that does not change until it exits.
  if (intercept.editing !== undefined) return <EditingState item={intercept.editing} />;

  if (help) return <HelpOverlay bindings={BINDINGS} />;
  const problem = failure ?? list.error;
  if (problem !== undefined) return <ErrorState message={problem} />;
  const detail = opened.detail;
  if (detail !== undefined) {
    const paused = intercept.pausedAt(detail.content.session.id);
    const bannerHeight = pausedLines(paused, size.columns).length;
    const promptHeight = prompt === undefined ? 0 : 3;
    return (
      <Box flexDirection="column" height={size.rows - 1}>
        <PausedBanner items={paused} width={size.columns} />
        <SessionDetail {...detail.content} lines={detail.lines} scroll={detail.scroll} height={Math.max(3, size.rows - 3 - bannerHeight - promptHeight)} />
        {prompt}
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
          <SessionList
            rows={window.rows}
            selectedId={window.selectedId}
            width={size.columns}
            height={listHeight - (prompt === undefined ? 0 : 3)}
            now={now}
            tls={list.tls}
            paused={pausedSessions(intercept.items)}
          />
        )}
      </Box>
      {editing !== undefined ? (
        <FilterBar text={editing.text} cursor={editing.text.length} {...(editing.error === undefined ? {} : { error: editing.error })} />
      ) : null}
      {prompt}
      {status}
    </Box>
  );
}
