/**
 * The TUI's key bindings: one table from keys to named actions (docs/architecture.md,
 * "Conventions"). The help overlay (`?`) is generated from it, so what it says is what the keys
 * do; use-key-input.ts reads keys through it and use-actions.ts says what each action does.
 */
import type { Key } from "ink";

export type Action =
  | "down"
  | "up"
  | "pageDown"
  | "pageUp"
  | "first"
  | "last"
  | "open"
  | "back"
  | "nextTab"
  | "filter"
  | "follow"
  | "viewMode"
  | "replay"
  | "export"
  | "hide"
  | "help"
  | "quit"
  | "interceptFilter"
  | "interceptToggle"
  | "resume"
  | "resumeAll"
  | "kill"
  | "edit"
  | "drop"
  | "close"
  | "redirect";

export interface Binding {
  readonly action: Action;
  /** As shown in the help. */
  readonly keys: string;
  readonly description: string;
  readonly matches: (input: string, key: Key) => boolean;
  /** Only on a session holding a paused item (interactive intercept), where it comes before the other bindings of its key. */
  readonly when?: "paused";
}

/** Where a key is pressed: `paused` when the selected (or open) session holds a paused item. */
export interface KeyContext {
  readonly paused: boolean;
}

export const BINDINGS: readonly Binding[] = [
  { action: "down", keys: "j ↓", description: "next session / scroll down", matches: (i, k) => i === "j" || k.downArrow },
  { action: "up", keys: "k ↑", description: "previous session / scroll up", matches: (i, k) => i === "k" || k.upArrow },
  { action: "pageDown", keys: "PgDn space", description: "a page down", matches: (i, k) => k.pageDown || i === " " },
  { action: "pageUp", keys: "PgUp b", description: "a page up", matches: (i, k) => k.pageUp || i === "b" },
  { action: "first", keys: "g", description: "first (oldest) session / top", matches: (i) => i === "g" },
  { action: "last", keys: "G", description: "last (newest) session / bottom", matches: (i) => i === "G" },
  { action: "open", keys: "enter", description: "open the session", matches: (_i, k) => k.return },
  { action: "back", keys: "q esc", description: "back to the list (in the list: quit)", matches: (i, k) => i === "q" || k.escape },
  { action: "nextTab", keys: "tab", description: "next tab: overview, events, stream", matches: (_i, k) => k.tab },
  { action: "filter", keys: "/ f", description: "filter (e.g. host:*.example.com status:failed)", matches: (i) => i === "/" || i === "f" },
  { action: "follow", keys: "F", description: "follow: keep the newest session selected", matches: (i) => i === "F" },
  { action: "viewMode", keys: "m", description: "stream view: auto, text, hex", matches: (i) => i === "m" },
  { action: "replay", keys: "r", description: "replay the session", matches: (i) => i === "r" },
  { action: "export", keys: "e", description: "export the session to socksmith-ID.json", matches: (i) => i === "e" },
  { action: "hide", keys: "d", description: "hide the session from this view", matches: (i) => i === "d" },
  // Interactive intercept: keys as in mitmproxy (i, I, a, A, X, e); d drops as mitmproxy's d deletes.
  { action: "interceptFilter", keys: "i", description: "intercept filter: what pauses (e.g. host:example.com stage:down)", matches: (i) => i === "i" },
  { action: "interceptToggle", keys: "I", description: "intercept on / off", matches: (i) => i === "I" },
  { action: "resume", keys: "a", description: "resume the session's paused item", matches: (i) => i === "a" },
  { action: "resumeAll", keys: "A", description: "resume every paused item", matches: (i) => i === "A" },
  {
    action: "kill",
    keys: "X",
    description: "kill it: deny a request (REP 02), reset a chunk's session, drop a datagram",
    matches: (i) => i === "X",
  },
  { action: "edit", keys: "e", description: "paused: edit it in your editor (a request: host, port, reply)", matches: (i) => i === "e", when: "paused" },
  { action: "drop", keys: "d", description: "paused: drop the chunk or datagram", matches: (i) => i === "d", when: "paused" },
  { action: "redirect", keys: "R", description: "paused: send a datagram going up elsewhere (host, port)", matches: (i) => i === "R", when: "paused" },
  {
    action: "close",
    keys: "c",
    description: "paused: close the chunk's session gracefully (FIN both ways; the chunk is not sent)",
    matches: (i) => i === "c",
    when: "paused",
  },
  { action: "help", keys: "?", description: "this help", matches: (i) => i === "?" },
  { action: "quit", keys: "Q", description: "quit (stops the proxy when it runs here)", matches: (i) => i === "Q" },
];

/** The action a key press means, if any: on a paused session its `paused` bindings first. */
export function actionFor(input: string, key: Key, context: KeyContext = { paused: false }): Action | undefined {
  const paused = context.paused ? BINDINGS.find((b) => b.when === "paused" && b.matches(input, key)) : undefined;
  return (paused ?? BINDINGS.find((b) => b.when === undefined && b.matches(input, key)))?.action;
}
