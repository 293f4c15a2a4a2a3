/**
 * The idle timeout of every tunnel, with one timer for all of them instead of a timer per
 * socket (two Timeout objects per tunnel, and a timer refresh on every read). A tunnel marks
 * itself `active` on each read; a sweep every quarter of the timeout (at most every second)
 * clears the marks and closes tunnels that stayed unmarked for the whole timeout. A tunnel is
 * therefore closed between `timeoutMs` and `timeoutMs` + one sweep period after its last byte.
 */
import { type Clock, type ClockTimer, systemClock } from "../ports.js";

export interface IdleTracked {
  /** Set by the tunnel on every read; cleared by the sweeper. */
  active: boolean;
  /** Called once when the tunnel has been idle for the timeout; it is no longer tracked. */
  idleTimedOut(): void;
}

export class IdleSweeper {
  private readonly tracked = new Map<IdleTracked, number>();
  /** Armed while anything is tracked; each sweep arms the next (one timer per period, not per tunnel). */
  private timer: ClockTimer | undefined;
  private readonly periodMs: number;

  constructor(
    private readonly timeoutMs: number,
    /** Times the sweeps and the idle periods (the engine's clock). */
    private readonly clock: Clock = systemClock,
  ) {
    this.periodMs = Math.max(10, Math.min(1000, Math.floor(timeoutMs / 4)));
  }

  add(tunnel: IdleTracked): void {
    tunnel.active = false;
    this.tracked.set(tunnel, this.clock.now());
    if (this.timer === undefined) this.arm();
  }

  delete(tunnel: IdleTracked): void {
    this.tracked.delete(tunnel);
    if (this.tracked.size === 0 && this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  private arm(): void {
    this.timer = this.clock.setTimeout(this.sweep, this.periodMs);
    // Tunnels' sockets keep the process alive, not the sweeper.
    this.timer.unref();
  }

  private readonly sweep = (): void => {
    this.timer = undefined;
    const now = this.clock.now();
    const expired: IdleTracked[] = [];
    for (const [tunnel, since] of this.tracked) {
      if (tunnel.active) {
        tunnel.active = false;
        this.tracked.set(tunnel, now);
      } else if (now - since >= this.timeoutMs) {
        expired.push(tunnel);
      }
    }
    for (const tunnel of expired) {
      this.delete(tunnel);
      tunnel.idleTimedOut();
    }
    if (this.tracked.size > 0 && this.timer === undefined) this.arm();
  };
}
