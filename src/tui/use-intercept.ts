/**
 * Interactive intercept in the TUI (issue 15): the queue's paused items and settings as state, the
 * intercept filter prompt (`i`), the request form (`e` on a paused request), the editor (`e` on a
 * paused chunk or datagram), and what the intercept keys do.
 *
 * Contract:
 * - Without a binding (browsing a file, a proxy without intercept) every intercept key only says
 *   so in the status bar.
 * - The keys act on the oldest paused item of the session they are pressed on (the open one, else
 *   the selected one); `A` and `I` on all. A key with nothing to act on says why and does nothing.
 * - `a` resumes as is; `X` kills (intercept.ts `killAction`); `d` drops a chunk or datagram;
 *   `e` on a request opens the form (host, port, and a REP to deny with instead), on a chunk or
 *   datagram runs the editor (edit-bytes.ts), and a changed result is sent at once: resolve with
 *   `{ resume: true, data }`. An unchanged file or a mistake (its line in the status bar) leaves
 *   the item paused with its original bytes.
 * - While the editor runs, `editing` is set: the app draws one still frame and drops keys
 *   (use-key-input.ts `active`); the terminal goes to the editor out of raw mode and this process
 *   stops reading it (terminal-handoff.ts), both restored when it exits.
 * - The prompt and the form read keys like the filter bar (ahead of the next render, from refs):
 *   enter applies, esc cancels; a filter that does not parse keeps the prompt open with its column.
 */
import type { Key } from "ink";
import { useStdin, useStdout } from "ink";
import { useEffect, useRef, useState } from "react";
import { FilterError } from "../filter/index.js";
import { editBytes } from "./edit-bytes.js";
import { describePaused, FORM_FIELDS, type InterceptBinding, killAction, type PausedItem, pausedOf, type RequestForm } from "./intercept.js";
import type { Action } from "./keys.js";
import { CLEAR_SCREEN, FRAME_SETTLE_MS, releaseInput } from "./terminal-handoff.js";
import type { SessionSource } from "./types.js";
import { type Editing, typeInto } from "./use-filter-editing.js";

/** A reader of key reads while something is open (the app routes reads to it first). */
export interface KeyReader {
  isOpen(): boolean;
  /** A read while open; returns the rest of the read after an enter that closed it, if any. */
  key(input: string, key: Key): string | undefined;
}

export interface InterceptState {
  /** A binding was given. */
  readonly available: boolean;
  readonly items: readonly PausedItem[];
  readonly active: boolean;
  readonly configured: boolean;
  /** The filter in force, as typed ("" for none). */
  readonly filterText: string;
  /** The `i` prompt while open. */
  readonly prompt: Editing | undefined;
  /** The request form while open. */
  readonly form: RequestForm | undefined;
  /** The item whose bytes are in the editor right now. */
  readonly editing: PausedItem | undefined;
  /** Whether the editor has the terminal now (ahead of the next render). */
  isEditing(): boolean;
  readonly promptInput: KeyReader;
  readonly formInput: KeyReader;
  /** The paused items of a capture session (by its id in the capture), oldest first. */
  pausedAt(id: number | undefined): PausedItem[];
  /** An intercept action on capture session `id` (the open or selected one). */
  act(action: InterceptActionName, id: number | undefined): void;
}

export type InterceptActionName = Extract<
  Action,
  "interceptFilter" | "interceptToggle" | "resume" | "resumeAll" | "kill" | "edit" | "drop" | "close" | "redirect"
>;

export function useIntercept(binding: InterceptBinding | undefined, source: Pick<SessionSource, "session">, say: (text: string) => void): InterceptState {
  const queue = binding?.queue;
  const [, setVersion] = useState(0);
  const [filterText, setFilterText] = useState(binding?.filterText?.trim() ?? "");
  const [prompt, setPromptState] = useState<Editing | undefined>(undefined);
  const promptRef = useRef<Editing | undefined>(undefined);
  const setPrompt = (next: Editing | undefined) => {
    promptRef.current = next;
    setPromptState(next);
  };
  const [form, setFormState] = useState<RequestForm | undefined>(undefined);
  const formRef = useRef<RequestForm | undefined>(undefined);
  const setForm = (next: RequestForm | undefined) => {
    formRef.current = next;
    setFormState(next);
  };
  const [editing, setEditingState] = useState<PausedItem | undefined>(undefined);
  const editingRef = useRef<PausedItem | undefined>(undefined);
  const setEditing = (next: PausedItem | undefined) => {
    editingRef.current = next;
    setEditingState(next);
  };
  const { stdin } = useStdin();
  const { stdout } = useStdout();

  useEffect(() => queue?.subscribe(() => setVersion((v) => v + 1)), [queue]);

  // The editor starts once the app has drawn its still frame and stopped reading keys (this effect runs after that commit).
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs once per item put in the editor; queue, stdin and stdout do not change meanwhile
  useEffect(() => {
    if (editing === undefined || editing.kind === "request" || queue === undefined) return;
    const item = editing;
    const timer = setTimeout(() => {
      // Ink keeps its raw mode and listener; the terminal goes to the editor in its usual (cooked) mode, and nothing here reads it.
      const tty = stdin as { isTTY?: boolean; setRawMode?: (raw: boolean) => void };
      const cooked = tty.isTTY === true && typeof tty.setRawMode === "function";
      const reclaim = releaseInput(stdin);
      if (cooked) tty.setRawMode!(false);
      void editBytes(item.data, { title: `${describePaused(item)}, session ${item.session}` }).then((outcome) => {
        if (stdout.isTTY) stdout.write(CLEAR_SCREEN);
        setEditing(undefined);
        if (cooked) tty.setRawMode!(true);
        reclaim();
        switch (outcome.kind) {
          case "unchanged":
            return say(`${describePaused(item)}: no change, still paused`);
          case "error":
            return say(`${outcome.message}; ${describePaused(item)} still paused`);
          case "edited":
            if (!queue.resolve(item.key, { resume: true, data: outcome.bytes })) return say("the item was let go while it was edited: the edit was not sent");
            return say(`sent the edited ${item.direction} ${item.kind} ${item.seq}: ${item.data.length} → ${outcome.bytes.length} bytes`);
          default: {
            const never: never = outcome;
            return never;
          }
        }
      });
    }, FRAME_SETTLE_MS);
    return () => clearTimeout(timer);
  }, [editing]);

  const items = queue?.items ?? [];

  const applyFilter = (text: string): boolean => {
    try {
      binding!.setFilter(text.trim());
      setFilterText(text.trim());
      setPrompt(undefined);
      say(
        text.trim() === ""
          ? "intercept filter cleared: nothing pauses"
          : `intercepting ${text.trim()}${binding!.queue.active ? "" : " (off: I switches it on)"}`,
      );
      return true;
    } catch (err) {
      const error = err instanceof FilterError ? { column: err.column, message: err.message } : { column: 1, message: (err as Error).message };
      setPrompt({ text, error });
      return false;
    }
  };

  const submitForm = (open: RequestForm): void => {
    const { host, port, rep } = open.values;
    if (open.item.kind === "datagram") {
      const portNumber = /^\d+$/.test(port.trim()) ? Number(port.trim()) : Number.NaN;
      if (host.trim() === "" || host.trim().length > 255) return setForm({ ...open, field: "host", error: "host: a name or an address (1 to 255 characters)" });
      if (!(portNumber >= 1 && portNumber <= 65535)) return setForm({ ...open, field: "port", error: "port: 1 to 65535" });
      setForm(undefined);
      const to = { host: host.trim(), port: portNumber };
      if (!queue!.resolve(open.item.key, { resume: true, redirect: to })) return say("the datagram was let go meanwhile: nothing sent");
      return say(`datagram sent to ${to.host}:${to.port} instead`);
    }
    let action: { resume: true; host: string; port: number } | { deny: number };
    if (rep.trim() !== "") {
      const code = /^0x[0-9a-f]+$/i.test(rep.trim()) ? Number.parseInt(rep.trim(), 16) : /^\d+$/.test(rep.trim()) ? Number(rep.trim()) : Number.NaN;
      if (!(code >= 1 && code <= 255)) return setForm({ ...open, field: "rep", error: "reply: a REP from 1 to 255 (e.g. 2, or 0x05), or empty to let it go" });
      action = { deny: code };
    } else {
      const portNumber = /^\d+$/.test(port.trim()) ? Number(port.trim()) : Number.NaN;
      if (host.trim() === "" || host.trim().length > 255) return setForm({ ...open, field: "host", error: "host: a name or an address (1 to 255 characters)" });
      if (!(portNumber >= 1 && portNumber <= 65535)) return setForm({ ...open, field: "port", error: "port: 1 to 65535" });
      action = { resume: true, host: host.trim(), port: portNumber };
    }
    setForm(undefined);
    if (!queue!.resolve(open.item.key, action)) return say("the request was let go meanwhile: nothing sent");
    say("deny" in action ? `request denied with REP ${action.deny}` : `request resumed to ${action.host}:${action.port}`);
  };

  const pausedAt = (id: number | undefined): PausedItem[] => {
    if (queue === undefined || id === undefined || queue.items.length === 0) return [];
    return pausedOf(queue.items, source.session(id));
  };

  const act = (action: InterceptActionName, id: number | undefined): void => {
    if (binding === undefined || queue === undefined) return say("intercept is not available here (socksmith run --intercept EXPR)");
    if (action === "interceptFilter") return setPrompt({ text: filterText });
    if (action === "interceptToggle") {
      queue.setActive(!queue.active);
      return say(`intercept ${queue.active ? "on" : "off"}${queue.configured ? "" : " (no filter yet: i sets one)"}`);
    }
    if (action === "resumeAll") {
      const n = queue.resumeAll();
      return say(n === 0 ? "nothing is paused" : `resumed ${n} paused item${n === 1 ? "" : "s"}`);
    }
    const item = pausedAt(id)[0];
    if (item === undefined) return say(id === undefined ? "no session selected" : `session ${id} has nothing paused`);
    const what = describePaused(item);
    switch (action) {
      case "resume":
        queue.resolve(item.key, { resume: true });
        return say(`resumed ${what}`);
      case "kill":
        queue.resolve(item.key, killAction(item));
        return say(`killed ${what}`);
      case "drop":
        if (item.kind === "request") return say("d drops chunks and datagrams: X denies a request, e edits it");
        queue.resolve(item.key, { drop: true });
        return say(`dropped ${what}`);
      case "redirect": {
        if (item.kind !== "datagram" || item.direction !== "up") return say("R sends a paused datagram going up elsewhere: e edits a request's destination");
        return setForm({ item, field: "host", values: { host: item.peer.host, port: String(item.peer.port), rep: "" } });
      }
      case "close":
        if (item.kind !== "chunk") return say("c closes a paused chunk's session gracefully: X denies a request, d drops a datagram");
        queue.resolve(item.key, { close: true });
        return say(`closed the session of ${what} (FIN both ways)`);
      case "edit":
        if (item.kind === "request") {
          const { host, port } = item.request.destination;
          return setForm({ item, field: "host", values: { host, port: String(port), rep: "" } });
        }
        return setEditing(item);
      default: {
        const never: never = action;
        return never;
      }
    }
  };

  return {
    available: binding !== undefined,
    items,
    active: queue?.active ?? false,
    configured: queue?.configured ?? false,
    filterText,
    prompt,
    form,
    editing,
    isEditing: () => editingRef.current !== undefined,
    pausedAt,
    act,
    promptInput: {
      isOpen: () => promptRef.current !== undefined,
      key: (input, key) => {
        const open = promptRef.current;
        if (open === undefined) return undefined;
        if (key.escape) return void setPrompt(undefined);
        if (key.return) return void applyFilter(open.text);
        if (key.backspace || key.delete) return void setPrompt({ text: open.text.slice(0, -1) });
        if (key.ctrl && input === "u") return void setPrompt({ text: "" });
        if (key.ctrl || key.meta) return undefined;
        const typed = typeInto(open.text, input);
        if (!typed.entered) return void setPrompt({ text: typed.text });
        return applyFilter(typed.text) && typed.rest !== "" ? typed.rest : undefined;
      },
    },
    formInput: {
      isOpen: () => formRef.current !== undefined,
      key: (input, key) => {
        const open = formRef.current;
        if (open === undefined) return undefined;
        const { field, values } = open;
        const set = (value: string) => setForm({ item: open.item, field, values: { ...values, [field]: value } });
        if (key.escape) return void setForm(undefined);
        if (key.return) return void submitForm(open);
        if (key.tab) {
          const step = key.shift ? FORM_FIELDS.length - 1 : 1;
          return void setForm({ ...open, field: FORM_FIELDS[(FORM_FIELDS.indexOf(field) + step) % FORM_FIELDS.length]! });
        }
        if (key.backspace || key.delete) return void set(values[field].slice(0, -1));
        if (key.ctrl && input === "u") return void set("");
        if (key.ctrl || key.meta) return undefined;
        // A read may hold several keys (tmux send-keys, a paste): a tab in it moves to the next field.
        let form: RequestForm = { item: open.item, field, values };
        for (const [i, piece] of input.split("\t").entries()) {
          if (i > 0) form = { ...form, field: FORM_FIELDS[(FORM_FIELDS.indexOf(form.field) + 1) % FORM_FIELDS.length]! };
          const typed = typeInto(form.values[form.field], piece);
          form = { ...form, values: { ...form.values, [form.field]: typed.text } };
          if (typed.entered) return void submitForm(form);
        }
        setForm(form);
        return undefined;
      },
    },
  };
}
