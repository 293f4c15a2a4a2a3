/**
 * The idle timeout of every tunnel, with one timer for all of them instead of a timer per
 * socket (two Timeout objects per tunnel, and a timer refresh on every read). A tunnel marks
 * itself `active` on each read; a sweep every quarter of the timeout (at most every second)
 * clears the marks and closes tunnels that stayed unmarked for the whole timeout. A tunnel is
 * therefore closed between `timeoutMs` and `timeoutMs` + one sweep period after its last byte.
 */
export interface IdleTracked {
  /** Set by the tunnel on every read; cleared by the sweeper. */
  active: boolean;
  /** Called once when the tunnel has been idle for the timeout; it is no longer tracked. */
  idleTimedOut(): void;
}

export class IdleSweeper {
  private readonly tracked = new Map<IdleTracked, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly periodMs: number;

  constructor(
    private readonly timeoutMs: number,
    private readonly now: () => number = Date.now,
  ) {
    this.periodMs = Math.max(10, Math.min(1000, Math.floor(timeoutMs / 4)));
  }

  add(tunnel: IdleTracked): void {
    tunnel.active = false;
    this.tracked.set(tunnel, this.now());
    if (this.timer === undefined) {
      this.timer = setInterval(this.sweep, this.periodMs);
      this.timer.unref();
    }
  }

  delete(tunnel: IdleTracked): void {
    this.tracked.delete(tunnel);
    if (this.tracked.size === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private readonly sweep = (): void => {
    const now = this.now();
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
  };
}
