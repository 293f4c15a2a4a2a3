/**
 * The session open in the detail view: which one, its tab and scroll (the request), the stream's
 * view mode, and the keys that act on it. Loading is use-session-detail.ts's; this hook holds what
 * the keys change.
 *
 * Contract:
 * - `open` goes straight to the bytes, unless there are none (a failed handshake): then the facts.
 * - `act` takes an action while a session is shown and says whether it was the detail view's:
 *   moving scrolls (clamped to the lines there are), `g`/`G` go to the session's start and end
 *   (loading them if the window is elsewhere), `back` closes it, `tab` cycles the tabs. Other
 *   actions (`m`, `r`, `e`, …) are the list's, which acts on the selected session.
 */
import { useCallback, useState } from "react";
import { assertNever } from "../lang/assert-never.js";
import type { Action } from "./keys.js";
import type { DetailTab, SessionSource, ViewMode } from "./types.js";
import { type DetailRequest, type SessionDetailState, useSessionDetail } from "./use-session-detail.js";
import { detailPageSize } from "./views/index.js";

/** In the order `tab` cycles through them. */
export const DETAIL_TABS: readonly DetailTab[] = ["overview", "events", "stream"];
/** In the order `m` cycles through them. */
export const VIEW_MODES: readonly ViewMode[] = ["auto", "text", "hex"];

export interface OpenSessionOptions {
  readonly source: SessionSource;
  readonly columns: number;
  /** The terminal's rows (the detail view leaves three to the status bar). */
  readonly rows: number;
  /** Bumped by every poll. */
  readonly tick: number;
  readonly now: number;
}

export interface OpenSession {
  /** What the detail view shows (undefined: the list shows). */
  readonly detail: SessionDetailState | undefined;
  /** Opens a session on its stream, or on its overview when it has no bytes. */
  open(id: number): void;
  /** Opens a session on a given tab. */
  show(id: number, tab: DetailTab): void;
  /** The next view mode of the stream (auto, text, hex). */
  nextMode(): void;
  /** An action while a session is shown: true when it was the detail view's. */
  act(action: Action): boolean;
}

export function useOpenSession(options: OpenSessionOptions): OpenSession {
  const { source } = options;
  const [request, setRequest] = useState<DetailRequest | undefined>(undefined);
  const [mode, setMode] = useState<ViewMode>("auto");
  const shift = useCallback((delta: number) => setRequest((d) => (d === undefined ? d : { ...d, scroll: Math.max(0, d.scroll + delta) })), []);
  const detail = useSessionDetail({
    source,
    detail: request,
    mode,
    width: options.columns,
    page: detailPageSize(options.rows - 3),
    tick: options.tick,
    now: options.now,
    shift,
  });

  const show = (id: number, tab: DetailTab) => setRequest({ id, tab, scroll: 0 });
  return {
    detail,
    open: (id) => {
      const row = source.session(id);
      const empty = row === undefined || (row.command !== "udp" && row.bytes_up_received + row.bytes_down_received === 0);
      show(id, empty ? "overview" : "stream");
    },
    show,
    nextMode: () => setMode(VIEW_MODES[(VIEW_MODES.indexOf(mode) + 1) % VIEW_MODES.length]!),
    act: (action) => {
      if (request === undefined || detail === undefined) return false;
      const { page, scroll: from } = detail;
      const scrollTo = (n: number) => {
        detail.release();
        setRequest({ ...request, scroll: Math.max(0, Math.min(Math.max(0, detail.lines.length - page), n)) });
      };
      switch (action) {
        case "down":
          scrollTo(from + 1);
          return true;
        case "up":
          scrollTo(from - 1);
          return true;
        case "pageDown":
          scrollTo(from + page);
          return true;
        case "pageUp":
          scrollTo(from - page);
          return true;
        case "first":
          detail.first();
          return true;
        case "last":
          detail.last();
          return true;
        case "back":
          setRequest(undefined);
          return true;
        case "nextTab":
          setRequest({ ...request, tab: DETAIL_TABS[(DETAIL_TABS.indexOf(request.tab) + 1) % DETAIL_TABS.length]!, scroll: 0 });
          return true;
        case "open":
        case "filter":
        case "follow":
        case "viewMode":
        case "replay":
        case "export":
        case "hide":
        case "help":
        case "quit":
        case "interceptFilter":
        case "interceptToggle":
        case "resume":
        case "resumeAll":
        case "kill":
        case "edit":
        case "drop":
        case "close":
        case "redirect":
          return false;
        default:
          return assertNever(action, "action");
      }
    },
  };
}
