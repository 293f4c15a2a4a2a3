/**
 * Timeouts of one duration for many sessions (the handshake timeout, the connect timeout) with
 * one Clock timer for all of them instead of a timer per session: arming a Node timer and
 * clearing it costs a Timeout object and two list operations, and almost every handshake and
 * dial finishes long before its deadline.
 *
 * - Entries share the duration and are added in time order, so the list is in deadline order:
 *   adding appends, cancelling unlinks (both O(1)); the one timer is armed for the earliest entry.
 * - Each callback runs at its entry's deadline exactly (as a timer of its own would: a test's
 *   manual clock sees the same deadlines). Cancelling never touches the timer: one armed for an
 *   entry that is gone fires early, finds nothing due and re-arms for the earliest entry left (or
 *   not at all when none is), so under steady traffic the timer is armed about once per duration,
 *   not once per entry. The timer is unref'd.
 * - When the timer fires, the time is taken as at least the deadline it was armed for (it has
 *   waited that long on Node's monotonic timers), so a wall clock set back does not delay a
 *   timeout.
 */
import type { Clock, ClockTimer } from "../ports.js";

/** A pending deadline; `cancel` it once what it bounds has finished. */
export class Deadline {
  /** Neighbours in the queue's list; both undefined (and `queue` too) once it fired or was cancelled. */
  prev: Deadline | undefined = undefined;
  next: Deadline | undefined = undefined;

  constructor(
    readonly at: number,
    readonly callback: () => void,
    public queue: DeadlineQueue | undefined,
  ) {}

  /** Cancels it; a no-op once it has fired or been cancelled. */
  cancel(): void {
    this.queue?.remove(this);
  }
}

export class DeadlineQueue {
  private head: Deadline | undefined;
  private tail: Deadline | undefined;
  private timer: ClockTimer | undefined;
  /** The deadline the timer is armed for. */
  private armedFor = 0;

  constructor(
    /** Every entry's time from `add` to its callback. */
    readonly durationMs: number,
    private readonly clock: Clock,
  ) {}

  /** Calls `callback` `durationMs` from now unless the returned deadline is cancelled first. */
  add(callback: () => void): Deadline {
    const entry = new Deadline(this.clock.now() + this.durationMs, callback, this);
    const tail = this.tail;
    if (tail === undefined) {
      this.head = this.tail = entry;
    } else {
      tail.next = entry;
      entry.prev = tail;
      this.tail = entry;
    }
    if (this.timer === undefined) this.arm(entry.at, this.durationMs);
    return entry;
  }

  /** Unlinks `entry` (Deadline.cancel); the timer stays as it is (see the file's comment). */
  remove(entry: Deadline): void {
    if (entry.queue === this) this.unlink(entry);
  }

  private unlink(entry: Deadline): void {
    const { prev, next } = entry;
    if (prev === undefined) this.head = next;
    else prev.next = next;
    if (next === undefined) this.tail = prev;
    else next.prev = prev;
    entry.prev = entry.next = entry.queue = undefined;
  }

  private arm(at: number, delay: number): void {
    this.armedFor = at;
    this.timer = this.clock.setTimeout(this.fire, delay);
    // Sessions' sockets keep the process alive, not their deadlines.
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    const now = Math.max(this.clock.now(), this.armedFor);
    // Callbacks may add (always later) and cancel entries: take the head afresh each time.
    for (let entry = this.head; entry !== undefined && entry.at <= now; entry = this.head) {
      this.unlink(entry);
      entry.callback();
    }
    const head = this.head;
    if (head !== undefined && this.timer === undefined) this.arm(head.at, Math.max(1, head.at - now));
  };
}
