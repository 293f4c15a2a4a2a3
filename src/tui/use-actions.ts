/**
 * What each named action does (keys.ts maps keys to them), and the help overlay they open.
 *
 * Contract:
 * - With the help shown, `back` and `help` close it and `quit` quits; nothing else acts.
 * - Any other action first dismisses the status bar's message and notes (notes.ts), then goes to
 *   the open session if one is shown (use-open-session.ts), else to the list. The list's actions
 *   act on the selected session as keys moved it (ahead of the next render).
 * - `back` in the list drops the filter, or quits when there is none. `r` and `e` run in the
 *   background and report in the status bar; a replay that recorded a session selects and opens it.
 */
import { useState } from "react";
import { assertNever } from "../lang/assert-never.js";
import type { Action } from "./keys.js";
import type { FilterEditing } from "./use-filter-editing.js";
import type { InterceptState } from "./use-intercept.js";
import type { OpenSession } from "./use-open-session.js";
import type { SessionListState } from "./use-session-list.js";
import type { StatusNotes } from "./use-status-notes.js";

/** Replays a session: a message for the status bar, and the session the replay recorded, to focus. */
export type Replay = (sessionId: number) => Promise<{ readonly message: string; readonly focus?: number }>;

export interface ActionsOptions {
  readonly list: SessionListState;
  readonly filterBar: FilterEditing;
  readonly opened: OpenSession;
  readonly notes: StatusNotes;
  /** Rows the list takes on screen (a replay's session is selected at the bottom). */
  readonly listHeight: number;
  readonly exportSession: (id: number) => void;
  /** Absent where replay is not available (`r` says so). */
  readonly replay: Replay | undefined;
  readonly exit: () => void;
  /** Interactive intercept's keys act through it, on the open session, else the selected one. */
  readonly intercept: InterceptState;
}

export interface Actions {
  /** Whether the help overlay shows. */
  readonly help: boolean;
  dispatch(action: Action): void;
}

export function useActions(options: ActionsOptions): Actions {
  const { list, filterBar, opened, notes, exit } = options;
  const [help, setHelp] = useState(false);

  const dispatch = (action: Action): void => {
    if (help) {
      if (action === "back" || action === "help") setHelp(false);
      else if (action === "quit") exit();
      return;
    }
    notes.dismiss();
    const current = list.current();
    if (opened.act(action)) return;
    switch (action) {
      case "down":
      case "up":
      case "pageDown":
      case "pageUp":
        return list.move(action);
      case "first":
      case "last":
        return list.toEdge(action);
      case "open":
        if (current !== undefined) opened.open(current);
        return;
      case "back":
        if (filterBar.filter !== undefined) return filterBar.clear();
        return exit();
      case "filter":
        return filterBar.open();
      case "follow":
        return list.toggleFollow();
      case "viewMode":
        return opened.nextMode();
      case "replay":
        if (current !== undefined) replay(current);
        return;
      case "export":
        if (current !== undefined) options.exportSession(current);
        return;
      case "hide":
        if (current === undefined) return;
        list.hide(current);
        notes.say(`session ${current} hidden from this view`);
        return;
      case "help":
        return setHelp(true);
      case "quit":
        return exit();
      case "nextTab":
        return;
      case "interceptFilter":
      case "interceptToggle":
      case "resume":
      case "resumeAll":
      case "kill":
      case "edit":
      case "drop":
      case "close":
      case "redirect": {
        const id = opened.detail?.content.session.id ?? current;
        return options.intercept.act(action, id);
      }
      default:
        return assertNever(action, "action");
    }
  };

  const replay = (id: number) => {
    if (options.replay === undefined) return notes.say("replay is not available here");
    notes.say(`replaying session ${id}…`);
    void options.replay(id).then(
      (outcome) => {
        notes.say(outcome.message);
        if (outcome.focus === undefined) return;
        list.select(outcome.focus, options.listHeight);
        opened.show(outcome.focus, "overview");
      },
      (err: Error) => notes.say(`replay failed: ${err.message}`),
    );
  };

  return { help, dispatch };
}
