/**
 * The TUI's keyboard: each read from the terminal goes to the filter bar while it is open, else
 * through the key table (keys.ts) to a named action.
 *
 * Several keys can arrive in one read (fast typing, a paste, tmux send-keys): one action per
 * character, and once `/` opens the filter bar the rest of the read is its text. A filter applied
 * by an enter within the text leaves what follows it to be read as keys again.
 */
import { type Key, useInput } from "ink";
import { type Action, actionFor, type KeyContext } from "./keys.js";
import type { FilterEditing } from "./use-filter-editing.js";

export interface KeyInputOptions {
  /** Where keys are pressed (a paused session's keys come first: keys.ts). */
  readonly context?: () => KeyContext;
  /** False while another process has the terminal (the editor): what reaches the TUI meanwhile is dropped. */
  readonly active?: () => boolean;
}

/**
 * `filterBar` is whichever prompt is open (the filter bar, the intercept prompt, the request form):
 * while it is open it takes the reads.
 */
export function useKeyInput(filterBar: Pick<FilterEditing, "isOpen" | "key">, dispatch: (action: Action) => void, options: KeyInputOptions = {}): void {
  const keys = (input: string, key: Key): void => {
    if (options.active?.() === false) return;
    if (input.length > 1 && !filterBar.isOpen() && !key.ctrl && !key.meta) {
      const plain = { ...key, return: false, tab: false, escape: false };
      for (let i = 0; i < input.length; i++) {
        const c = input[i]!;
        handle(c, { ...plain, return: c === "\r", tab: c === "\t" });
        if (filterBar.isOpen() && i + 1 < input.length) return handle(input.slice(i + 1), plain);
      }
      return;
    }
    handle(input, key);
  };

  const handle = (input: string, key: Key): void => {
    if (filterBar.isOpen()) {
      const rest = filterBar.key(input, key);
      if (rest !== undefined) keys(rest, key);
      return;
    }
    const action = actionFor(input, key, options.context?.());
    if (action !== undefined) dispatch(action);
  };

  useInput(keys);
}
