/**
 * The filter bar (`/`): the filter applied to the list, its text, and the bar while it is open.
 *
 * Contract:
 * - Keys can arrive faster than React re-renders (a paste, tmux send-keys): `isOpen` and `key`
 *   read the bar's latest state from a ref, not from the render's closure.
 * - Enter applies the text: an empty text clears the filter; text that does not parse keeps the
 *   bar open with the error and its column (FilterError), and the applied filter is unchanged.
 * - `key` takes a read while the bar is open; typed or pasted text may hold editing keys of its
 *   own: enter applies (what follows it in the read is returned, to be read as keys again),
 *   ctrl-U clears, DEL/BS erase, other control characters are dropped.
 */
import type { Key } from "ink";
import { useRef, useState } from "react";
import { type Filter, FilterError, parseFilter } from "../filter/index.js";

export interface Editing {
  readonly text: string;
  readonly error?: { column: number; message: string };
}

export interface FilterEditing {
  /** The filter the list shows (undefined: every session). */
  readonly filter: Filter | undefined;
  /** Its text as typed, trimmed ("" without a filter). */
  readonly filterText: string;
  /** The bar as this render draws it (undefined: closed). */
  readonly editing: Editing | undefined;
  /** Whether the bar is open now (ahead of the next render). */
  isOpen(): boolean;
  /** Opens the bar on the applied filter's text. */
  open(): void;
  /** Drops the applied filter. */
  clear(): void;
  /** A read while the bar is open; returns the rest of the read after an applied filter, if any. */
  key(input: string, key: Key): string | undefined;
}

/** Typed or pasted text added to the bar's `text`, up to an enter (`entered`: then `rest` is what followed it). */
export function typeInto(text: string, input: string): { readonly text: string; readonly entered: boolean; readonly rest: string } {
  let typed = text;
  for (let i = 0; i < input.length; i++) {
    const c = input[i]!;
    if (c === "\r" || c === "\n") return { text: typed, entered: true, rest: input.slice(i + 1) };
    if (c === "\x15") typed = "";
    else if (c === "\x7f" || c === "\b") typed = typed.slice(0, -1);
    else if (c >= " ") typed += c;
  }
  return { text: typed, entered: false, rest: "" };
}

export function useFilterEditing(): FilterEditing {
  const [filterText, setFilterText] = useState("");
  const [filter, setFilter] = useState<Filter | undefined>(undefined);
  const [editing, setEditingState] = useState<Editing | undefined>(undefined);
  const editingRef = useRef<Editing | undefined>(undefined);
  const setEditing = (next: Editing | undefined) => {
    editingRef.current = next;
    setEditingState(next);
  };

  const apply = (text: string): boolean => {
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

  return {
    filter,
    filterText,
    editing,
    isOpen: () => editingRef.current !== undefined,
    open: () => setEditing({ text: filterText }),
    clear: () => {
      setFilter(undefined);
      setFilterText("");
    },
    key: (input, key) => {
      const open = editingRef.current;
      if (open === undefined) return undefined;
      if (key.escape) return void setEditing(undefined);
      if (key.return) return void apply(open.text);
      if (key.backspace || key.delete) return void setEditing({ text: open.text.slice(0, -1) });
      if (key.ctrl && input === "u") return void setEditing({ text: "" });
      if (key.ctrl || key.meta) return undefined;
      const typed = typeInto(open.text, input);
      if (!typed.entered) return void setEditing({ text: typed.text });
      return apply(typed.text) && typed.rest !== "" ? typed.rest : undefined;
    },
  };
}
