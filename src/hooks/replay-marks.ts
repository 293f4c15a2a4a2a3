/**
 * Which sessions of a running proxy are replays of captured ones: what hooks see as
 * `ctx.session.replay` (api.ts). The proxy (cli/proxy.ts) creates one and marks it: its own client
 * replay (the TUI's `r` through the proxy) by the client port the replay connects from, and server
 * replay by session as it answers from a recording. The dispatcher only reads it, before each hook
 * call of a session, and releases a session's mark when the session ends.
 *
 * - A client replay may be marked before or after its session opens (the replayer learns its port
 *   once connected): a mark for a port waits until a session from that port reads it, and belongs
 *   to that session from then on. A session that is already a replay does not take it.
 * - A server mark replaces any mark the session had; `servedFrom(id, undefined)` removes it (the
 *   recording did not answer after all).
 * Memory: one entry per marked session until released, and client marks not yet read.
 */
import type { SessionInfo } from "./api.js";

export type ReplayMark = NonNullable<SessionInfo["replay"]>;

/** What the dispatcher needs: read a session's mark, release it when the session ends. */
export interface ReplayLookup {
  /** The mark of session `id` from `clientPort`, taking a client mark waiting for that port. */
  replayOf(id: number, clientPort: number): ReplayMark | undefined;
  /** Session `id` ended: its mark is forgotten. */
  release(id: number): void;
}

export class ReplayMarks implements ReplayLookup {
  /** Client replays whose session has not read its mark yet: client port → the recorded session. */
  private readonly waiting = new Map<number, number>();
  private readonly marks = new Map<number, ReplayMark>();

  /** The proxy's own client replay of recorded session `of` connects (on loopback) from `clientPort`. */
  clientReplay(clientPort: number, of: number): void {
    this.waiting.set(clientPort, of);
  }

  /** Session `id` is answered from recording `of` (server replay), or no longer (`undefined`). */
  servedFrom(id: number, of: number | undefined): void {
    if (of === undefined) this.marks.delete(id);
    else this.marks.set(id, { kind: "server", of });
  }

  replayOf(id: number, clientPort: number): ReplayMark | undefined {
    const mark = this.marks.get(id);
    if (mark !== undefined) return mark;
    const of = this.waiting.get(clientPort);
    if (of === undefined) return undefined;
    this.waiting.delete(clientPort);
    const claimed: ReplayMark = { kind: "client", of };
    this.marks.set(id, claimed);
    return claimed;
  }

  release(id: number): void {
    this.marks.delete(id);
  }
}

/** No session is a replay (the dispatcher's default: tests, and a proxy that never replays). */
export const noReplays: ReplayLookup = { replayOf: () => undefined, release: () => {} };
