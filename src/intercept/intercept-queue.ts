/**
 * The items a person holds (interactive intercept, issue 15), the filter that decides what pauses
 * and the on/off switch. A UI subscribes, shows `items`, and answers with `resolve`; the runner
 * (intercept-runner.ts) asks `matches` and waits on `hold`.
 *
 * - Configured: a filter is set. Active: the switch is on (`setActive`; on by default). Something
 *   pauses only while both hold. Switching off or changing the filter keeps what is already held.
 * - `resolve(key, action)` lets one item go with a person's action; `resumeAll()` lets every item
 *   go as it is (the person's "resume all"); `releaseAll()` also switches intercept off: the UI
 *   closed or the proxy stops, so nobody could answer what would pause next.
 * - Bounded without a global cap: an item holds its session's direction, and the engine reads
 *   nothing more from it until it is answered (ports.ts). So a TCP session holds at most its
 *   request, or one chunk per direction; a UDP association at most the engine's backlog of
 *   datagrams waiting for a hook (MAX_WAITING in engine/io/udp-association.ts; beyond it the
 *   engine drops and counts). The number of items is therefore bounded by the session limit.
 * - Listeners are called synchronously, in order; one that throws is reported to `onError` and
 *   does not stop the others or the traffic.
 */
import type { SessionId } from "../engine/index.js";
import type {
  ActionFor,
  InterceptAction,
  InterceptEvent,
  InterceptListener,
  InterceptPredicate,
  InterceptSubject,
  PausedDatagram,
  PausedItem,
} from "./types.js";
import { RESUME } from "./types.js";

export interface InterceptQueueOptions {
  /** The time items are stamped with (`since`); Date.now by default. */
  readonly now?: () => number;
  /** A listener or the predicate threw. */
  readonly onError?: (err: unknown, where: "listener" | "predicate") => void;
}

/** An item without what the queue gives it. */
export type PausedItemInput = PausedItem extends infer I ? (I extends PausedItem ? Omit<I, "key" | "since"> : never) : never;

interface Held {
  readonly item: PausedItem;
  readonly answer: (action: InterceptAction) => void;
}

export class InterceptQueue {
  private readonly held = new Map<string, Held>();
  private readonly listeners = new Set<InterceptListener>();
  private predicate: InterceptPredicate | undefined;
  private on = true;
  private next = 1;
  private readonly now: () => number;

  constructor(private readonly options: InterceptQueueOptions = {}) {
    this.now = options.now ?? Date.now;
  }

  /** The held items, oldest first. */
  get items(): readonly PausedItem[] {
    return [...this.held.values()].map((h) => h.item);
  }

  get size(): number {
    return this.held.size;
  }

  /** The item under `key`, while it is held. */
  get(key: string): PausedItem | undefined {
    return this.held.get(key)?.item;
  }

  /** A filter is set: the runner asks for every chunk and datagram (even while switched off). */
  get configured(): boolean {
    return this.predicate !== undefined;
  }

  get active(): boolean {
    return this.on;
  }

  /** Sets the filter (undefined: nothing pauses, and chunks take the fast path in new sessions). */
  setFilter(predicate: InterceptPredicate | undefined): void {
    this.predicate = predicate;
    this.emit({ type: "settings", active: this.on, configured: this.configured });
  }

  setActive(active: boolean): void {
    this.on = active;
    this.emit({ type: "settings", active: this.on, configured: this.configured });
  }

  /** Calls `listener` with every event from now; returns the unsubscribe function. */
  subscribe(listener: InterceptListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Whether `subject` pauses now: switched on, a filter set, and it matches (a throw: no). */
  matches(subject: InterceptSubject): boolean {
    const predicate = this.predicate;
    if (!this.on || predicate === undefined) return false;
    try {
      return predicate(subject) === true;
    } catch (err) {
      this.options.onError?.(err, "predicate");
      return false;
    }
  }

  /**
   * Holds an item until a person (or `resumeAll`, `releaseAll`, `ended`) answers; resolves with
   * the action. Called by the runner, which has checked `matches`.
   */
  hold<I extends PausedItemInput>(input: I): Promise<ActionFor<I["kind"]>> {
    const item = { ...input, key: `${input.kind}-${this.next++}`, since: this.now() } as PausedItem;
    // `resolve` only lets an action through that fits the item's kind (`fits`), hence the cast.
    return new Promise((resolve) => {
      this.held.set(item.key, { item, answer: resolve as (action: InterceptAction) => void });
      this.emit({ type: "paused", item });
    });
  }

  /**
   * Lets the item under `key` go with `action`. False (and nothing happens) when no item is held
   * under `key`, or the action does not fit it: a request takes resume (host, port) or deny; a
   * chunk resume (data), drop, close or reset; a datagram resume (data; redirect for "up" only)
   * or drop. A port must be 1-65535 and a host non-empty; a deny code a name or 1-255.
   */
  resolve(key: string, action: InterceptAction): boolean {
    const held = this.held.get(key);
    if (held === undefined || !fits(held.item, action)) return false;
    this.let(held, action, "person");
    return true;
  }

  /** Lets every held item go as it is; returns how many. */
  resumeAll(): number {
    return this.letAll("resume-all");
  }

  /** Switches intercept off and lets every held item go as it is; returns how many. */
  releaseAll(): number {
    if (this.on) this.setActive(false);
    return this.letAll("release");
  }

  /**
   * Session `id` ended: its items leave the queue (a "resolved" event by "ended") and their
   * promises never settle: an answer now would reach a relay that has already reported its
   * session closed, and it would report the chunk after the close. Nothing else holds them, so
   * they are collected.
   */
  ended(id: SessionId): void {
    for (const held of [...this.held.values()]) {
      if (held.item.session !== id) continue;
      this.held.delete(held.item.key);
      this.emit({ type: "resolved", item: held.item, action: RESUME, by: "ended" });
    }
  }

  private letAll(by: "resume-all" | "release"): number {
    const all = [...this.held.values()];
    for (const held of all) this.let(held, RESUME, by);
    return all.length;
  }

  private let(held: Held, action: InterceptAction, by: "person" | "resume-all" | "release" | "ended"): void {
    this.held.delete(held.item.key);
    held.answer(action);
    this.emit({ type: "resolved", item: held.item, action, by });
  }

  private emit(event: InterceptEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.options.onError?.(err, "listener");
      }
    }
  }
}

/** Whether `action` is one the item's kind takes, with values in range. */
function fits(item: PausedItem, action: InterceptAction): boolean {
  if (typeof action !== "object" || action === null) return false;
  switch (item.kind) {
    case "request":
      if ("deny" in action) return typeof action.deny === "string" || (Number.isInteger(action.deny) && action.deny >= 1 && action.deny <= 255);
      return isResume(action) && okHost(get(action, "host")) && okPort(get(action, "port")) && !("data" in action) && !("redirect" in action);
    case "chunk":
      if ("drop" in action || "close" in action || "reset" in action) return true;
      return isResume(action) && okData(get(action, "data")) && !("host" in action) && !("redirect" in action);
    case "datagram":
      if ("drop" in action) return true;
      return isResume(action) && okData(get(action, "data")) && okRedirect(item, get(action, "redirect")) && !("host" in action);
    default:
      return false;
  }
}

function isResume(action: InterceptAction): boolean {
  return "resume" in action && action.resume === true;
}

function get(action: InterceptAction, field: string): unknown {
  return (action as Record<string, unknown>)[field];
}

function okHost(host: unknown): boolean {
  return host === undefined || (typeof host === "string" && host.length > 0 && host.length <= 255);
}

function okPort(port: unknown): boolean {
  return port === undefined || (Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535);
}

function okData(data: unknown): boolean {
  return data === undefined || data instanceof Uint8Array;
}

function okRedirect(item: PausedDatagram, redirect: unknown): boolean {
  if (redirect === undefined) return true;
  if (item.direction !== "up" || typeof redirect !== "object" || redirect === null) return false;
  const { host, port } = redirect as { host?: unknown; port?: unknown };
  return okHost(host) && okPort(port);
}
