/**
 * A Clock whose time moves only when a test says so (EngineOptions.clock): the engine's timers
 * (handshake, connect, BIND, idle, UDP idle, linger, stop's grace) fire inside `advance()`, so a
 * timeout test checks both sides of a deadline without waiting for it in real time.
 *
 * Sockets stay real: the engine arms most timers in reaction to socket events, so a test waits
 * for the timer with `armed()` before moving time, and waits for the effects of a timer that
 * fired (a close, a reply) on the sockets as usual.
 */
import type { Clock, ClockTimer } from "../../src/engine/ports.js";

class ManualTimer implements ClockTimer {
  constructor(
    readonly due: number,
    /** Arming order: timers due at the same time fire in it. */
    readonly seq: number,
    /** The delay it was armed with, what `armed()` looks for. */
    readonly delay: number,
    readonly callback: () => void,
  ) {}
  unref(): void {}
}

export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private timers: ManualTimer[] = [];
  private waiters: Array<{ delay: number; resolve: () => void }> = [];

  /** Starts at `start` (epoch ms; a fixed date, so no fact's time depends on when the test ran). */
  constructor(start = Date.UTC(2024, 0, 1)) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(callback: () => void, ms: number): ClockTimer {
    // Like Node: a delay below 1 (or not a number) is 1.
    const delay = Number.isFinite(ms) && ms >= 1 ? ms : 1;
    const timer = new ManualTimer(this.time + delay, this.seq++, delay, callback);
    this.timers.push(timer);
    const waiting = this.waiters;
    this.waiters = waiting.filter((w) => w.delay !== delay);
    for (const w of waiting) if (w.delay === delay) w.resolve();
    return timer;
  }

  clearTimeout(timer: ClockTimer | undefined): void {
    if (!(timer instanceof ManualTimer)) return;
    this.timers = this.timers.filter((t) => t !== timer);
  }

  /** Timers armed and not yet fired or cleared. */
  get pending(): number {
    return this.timers.length;
  }

  /** Delays (ms) of the pending timers, in arming order. */
  get pendingDelays(): number[] {
    return [...this.timers].sort((a, b) => a.seq - b.seq).map((t) => t.delay);
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due, in order of due time (then of
   * arming), including timers armed by those callbacks; while a timer runs, `now()` is its due
   * time. Synchronous: what a callback starts on sockets happens after it returns.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`advance(${ms}): time only moves forward`);
    const target = this.time + ms;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const t of this.timers) if (t.due <= target && (next === undefined || t.due < next.due || (t.due === next.due && t.seq < next.seq))) next = t;
      if (next === undefined) break;
      this.timers = this.timers.filter((t) => t !== next);
      this.time = next.due;
      next.callback();
    }
    this.time = target;
  }

  /**
   * Resolves once a timer with delay `delay` is pending (at once when one is already), for a test
   * to wait until the engine armed the timer it is about to run out; fails after `timeoutMs` of
   * real time.
   */
  armed(delay: number, timeoutMs = 3000): Promise<void> {
    if (this.timers.some((t) => t.delay === delay)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        delay,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`timeout: no ${delay} ms timer was armed within ${timeoutMs} ms (pending: ${this.pendingDelays.join(", ") || "none"})`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }
}
