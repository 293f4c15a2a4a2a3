/**
 * One direction's wait state (backpressure, docs/architecture.md "Trust rules"): why the socket
 * that feeds the direction is not read, as a set of reasons, not a count. Used by both relays:
 * tcp-relay.ts has one per direction, served-relay.ts one for the client (its only source).
 *
 * - DRAIN: a write toward the direction's destination (relayed or injected) found the socket's
 *   buffer full; cleared by that socket's `drain`, which means everything queued is out.
 * - HOOK: the data hook has not answered the direction's chunk yet.
 * - CAPTURE: the observer's latest promise for the direction has not settled (an older one
 *   settling says nothing about the newer facts).
 *
 * The source is paused when the first reason is set and resumed when the last one clears (unless
 * it is destroyed); setting a reason twice is the same as once, so one `drain` frees what any
 * number of full writes held. Injectors pace themselves with `writable()`: they wait while DRAIN
 * or CAPTURE is set (not HOOK: the injector may be that hook).
 */
import type { Socket } from "node:net";

/** Reasons a direction is not reading (bits of its wait state). */
export const WAIT_DRAIN = 1;
export const WAIT_HOOK = 2;
export const WAIT_CAPTURE = 4;
export type WaitReason = typeof WAIT_DRAIN | typeof WAIT_HOOK | typeof WAIT_CAPTURE;

const PACED = WAIT_DRAIN | WAIT_CAPTURE;

export class DirectionWait {
  /** WAIT_* bits; 0 = reading. */
  private reasons = 0;
  /** The observer's latest promise: only its settling clears CAPTURE. */
  private capture: PromiseLike<void> | undefined;
  /** Injectors waiting for the direction to be writable again (see writable()). */
  private writers: (() => void)[] | undefined;

  /** `source`: the socket this direction reads from (paused and resumed here). */
  constructor(private readonly source: Socket) {}

  /** No reason is set: the source may be read. */
  get reading(): boolean {
    return this.reasons === 0;
  }

  has(reason: WaitReason): boolean {
    return (this.reasons & reason) !== 0;
  }

  /** Adds a reason; the first one pauses the source. */
  wait(reason: WaitReason): void {
    if (this.reasons === 0) this.source.pause();
    this.reasons |= reason;
  }

  /** Clears a reason (if set); clearing the last of DRAIN and CAPTURE wakes paced injectors, the last of all resumes the source. */
  done(reason: WaitReason): void {
    if ((this.reasons & reason) === 0) return;
    this.reasons &= ~reason;
    if ((this.reasons & PACED) === 0) this.wakeWriters();
    if (this.reasons === 0 && !this.source.destroyed) this.source.resume();
  }

  /** The observer's answer for a fact of this direction: a promise (the capture is behind) makes it wait for CAPTURE until the latest one settles. */
  captured(capture: void | PromiseLike<void> | undefined): void {
    if (capture === undefined) return;
    this.capture = capture;
    this.wait(WAIT_CAPTURE);
    const settled = (): void => {
      if (this.capture !== capture) return;
      this.capture = undefined;
      this.done(WAIT_CAPTURE);
    };
    capture.then(settled, settled);
  }

  /** undefined while neither DRAIN nor CAPTURE is set; else a promise that settles once both are clear (or `wakeWriters()` is called). */
  writable(): Promise<void> | undefined {
    if ((this.reasons & PACED) === 0) return undefined;
    return new Promise<void>((resolve) => (this.writers ??= []).push(resolve));
  }

  /** Settles every promise `writable()` gave out (also when the session's sockets close). */
  wakeWriters(): void {
    const writers = this.writers;
    if (writers === undefined) return;
    this.writers = undefined;
    for (const resolve of writers) resolve();
  }
}
