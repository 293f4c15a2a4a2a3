/**
 * What the TUI needs of interactive intercept (issue 15), and the plain rules its keys follow.
 * The TUI never imports the engine: it gets an `InterceptBinding` from the composition root
 * (cli/tui-runner.tsx), whose `queue` the intercept queue (intercept/intercept-queue.ts) fits.
 *
 * Which list row a paused item belongs to: items name the engine's session id, rows carry it as
 * `engine_id`; only an open row can hold one (engine ids start again in each run of a capture).
 */
import { formatEndpoint, formatReply, printable } from "../format/index.js";
import type { InterceptAction, InterceptListener, PausedItem } from "../intercept/types.js";
import type { SessionRow } from "./types.js";

export type { InterceptAction, InterceptListener, PausedItem } from "../intercept/types.js";

/** The queue's surface the TUI uses (InterceptQueue fits it). */
export interface InterceptControl {
  /** The held items, oldest first. */
  readonly items: readonly PausedItem[];
  /** The switch (`I`). */
  readonly active: boolean;
  /** A filter is set. */
  readonly configured: boolean;
  /** Calls `listener` with every event from now; returns the unsubscribe function. */
  subscribe(listener: InterceptListener): () => void;
  /** Lets one item go; false when it is no longer held or the action does not fit it. */
  resolve(key: string, action: InterceptAction): boolean;
  /** Lets every held item go as it is; returns how many. */
  resumeAll(): number;
  setActive(active: boolean): void;
}

/** Intercept as handed to the TUI (absent: browsing a file, or a proxy without intercept). */
export interface InterceptBinding {
  readonly queue: InterceptControl;
  /**
   * Sets the filter from its text (`i`); "" clears it (nothing pauses). Throws a FilterError (with
   * its column) when the text does not parse: the filter in force is then unchanged.
   */
  setFilter(text: string): void;
  /** The filter's text in force at start (`run --intercept EXPR`); "" or absent for none. */
  readonly filterText?: string;
}

/** The request form's fields (`e` on a paused request), in the order tab moves through them. */
export const FORM_FIELDS = ["host", "port", "rep"] as const;
export type FormField = (typeof FORM_FIELDS)[number];

/** The request form while open: the field being typed in, the values as typed, the last mistake. */
export interface RequestForm {
  /** A request (host, port, or a REP to deny with) or an "up" datagram (where it goes: host and port). */
  readonly item: PausedItem & { readonly kind: "request" | "datagram" };
  readonly field: FormField;
  readonly values: Readonly<Record<FormField, string>>;
  readonly error?: string;
}

/** The REP a kill (`X`) denies a paused request with: 02, connection not allowed by ruleset. */
export const KILL_REP = 2;

/** What `X` does to an item: deny a request with REP 02, reset a chunk's session, drop a datagram. */
export function killAction(item: PausedItem): InterceptAction {
  switch (item.kind) {
    case "request":
      return { deny: KILL_REP };
    case "chunk":
      return { reset: true };
    case "datagram":
      return { drop: true };
    default: {
      const never: never = item;
      return never;
    }
  }
}

/** The items of one list row, oldest first (none unless the row is open). */
export function pausedOf(items: readonly PausedItem[], row: Pick<SessionRow, "engine_id" | "status"> | undefined): PausedItem[] {
  if (row === undefined || row.status !== "open") return [];
  return items.filter((item) => item.session === row.engine_id);
}

/** The engine ids of the sessions that hold a paused item. */
export function pausedSessions(items: readonly PausedItem[]): ReadonlySet<number> {
  return new Set(items.map((item) => item.session));
}

/** One line naming an item, e.g. "down chunk 3, 120 bytes" or "request CONNECT example.com:443"; terminal-safe. */
export function describePaused(item: PausedItem): string {
  switch (item.kind) {
    case "request": {
      const { command, destination } = item.request;
      return `request ${command.toUpperCase()} ${printable(Buffer.from(formatEndpoint(destination)))}`;
    }
    case "chunk":
      return `${item.direction} chunk ${item.seq}, ${bytes(item.data.length)}`;
    case "datagram": {
      const way = item.direction === "up" ? "to" : "from";
      return `${item.direction} datagram ${item.seq} ${way} ${printable(Buffer.from(formatEndpoint(item.peer)))}, ${bytes(item.data.length)}`;
    }
    default: {
      const never: never = item;
      return never;
    }
  }
}

/** The keys that act on an item of this kind, for the detail view's top line. */
export function pausedKeys(item: PausedItem): string {
  switch (item.kind) {
    case "request":
      return `a resume  e edit host/port/reply  X deny (${formatReply(KILL_REP, "5")})  A resume all`;
    case "chunk":
      return "a resume  e edit  d drop  c close (FIN)  X kill (RST)  A resume all";
    case "datagram":
      return item.direction === "up"
        ? "a resume  e edit  R redirect  d drop  X kill (drop)  A resume all"
        : "a resume  e edit  d drop  X kill (drop)  A resume all";
    default: {
      const never: never = item;
      return never;
    }
  }
}

function bytes(n: number): string {
  return `${n} byte${n === 1 ? "" : "s"}`;
}
