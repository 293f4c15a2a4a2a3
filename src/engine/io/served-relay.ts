/**
 * A CONNECT that a hook chose to serve itself (`{ serve: true }`): there is no upstream. Client
 * bytes go to the data hook (direction "up") and nowhere else; the hook answers with
 * `inject("down", …)`, and ends the session with `{ close: true }` or `{ reset: true }`.
 * A client FIN is answered with a FIN once the hook has seen everything before it.
 *
 * Backpressure (one owner per direction, as in tcp-relay.ts): the hook's injects are this session's download, and the client's
 * requests are what drive it. So reading the client has one wait state with three reasons
 * (direction-wait.ts): DRAIN (an inject found the client's socket buffer full; cleared by its
 * `drain`), HOOK (the data hook has not answered yet) and CAPTURE (the observer's latest promise,
 * for a request or an inject, has not settled). The client is read again only when none is left.
 * A hook that injects without being asked (timers) paces itself with `writable("down")`.
 */
import type { Socket } from "node:net";
import type { Direction } from "../types.js";
import type { CloseReason, DataVerdict } from "../ports.js";
import type { RelayCounts, RelayHost } from "./tcp-relay.js";
import { DirectionWait, WAIT_DRAIN, WAIT_HOOK } from "./direction-wait.js";
import type { SocketReader } from "./socket-reader.js";
import type { IdleSweeper, IdleTracked } from "./idle-sweeper.js";
import { callHook } from "./call-hook.js";
import { resetSocket } from "./raw-stream.js";

const EMPTY = new Uint8Array(0);
const NOTHING_RECEIVED = Buffer.alloc(0);

export class ServedRelay implements RelayCounts, IdleTracked {
  active = false;
  bytesUpReceived = 0;
  bytesUpSent = 0;
  bytesDownReceived = 0;
  bytesDownSent = 0;
  private seq = 0;
  /** Why the client is not read. */
  private readonly waiting: DirectionWait;
  private clientEnded = false;
  private reason: CloseReason | undefined;
  private errno: string | undefined;

  constructor(
    private readonly host: RelayHost,
    private readonly client: Socket,
    reader: SocketReader,
    private readonly idle: IdleSweeper | undefined,
  ) {
    this.waiting = new DirectionWait(client);
    reader.sink = (view) => this.received(Buffer.from(view));
    client.on("end", () => {
      this.clientEnded = true;
      this.finishIfDone();
    });
    client.on("error", (err: NodeJS.ErrnoException) => {
      this.reason ??= err.code === "ECONNRESET" ? "client-reset" : "client-error";
      this.errno ??= err.code;
    });
    client.on("drain", () => this.waiting.done(WAIT_DRAIN));
    client.on("close", () => {
      this.waiting.wakeWriters();
      this.idle?.delete(this);
      this.host.relayEnded(this.reason ?? "completed", this.errno, this);
    });
    idle?.add(this);
  }

  start(early: Buffer, clientEnded: boolean): void {
    if (early.length > 0) this.received(early);
    if (clientEnded) {
      this.clientEnded = true;
      this.finishIfDone();
    }
    if (this.waiting.reading) this.client.resume();
  }

  inject(direction: Direction, data: Uint8Array): void {
    // There is no upstream: only bytes for the client go anywhere.
    if (direction !== "down" || this.client.writableEnded || this.client.destroyed || data.length === 0) return;
    // The hook is this session's server: what it writes counts as received from the target too.
    this.bytesDownReceived += data.length;
    this.bytesDownSent += data.length;
    if (!this.client.write(data)) this.waiting.wait(WAIT_DRAIN);
    this.waiting.captured(
      this.host.observer.chunk?.({
        id: this.host.id,
        direction: "down",
        seq: this.seq++,
        at: this.host.now(),
        received: NOTHING_RECEIVED,
        sent: data,
        verdict: "inject",
      }),
    );
  }

  /**
   * undefined when injected bytes can go to the client now; else a promise that settles once
   * neither the client's drain nor the capture holds the session (a pending hook does not count:
   * the injector may be that hook), or the client has gone.
   */
  writable(direction: Direction): Promise<void> | undefined {
    if (direction !== "down" || this.client.destroyed) return undefined;
    return this.waiting.writable();
  }

  close(mode: "graceful" | "reset", reason: CloseReason): void {
    this.reason ??= reason;
    if (mode === "reset") {
      if (!this.client.destroyed) resetSocket(this.client);
      return;
    }
    this.client.end();
    this.client.destroySoon();
  }

  destroy(reason: CloseReason): void {
    this.reason ??= reason;
    this.client.destroy();
  }

  idleTimedOut(): void {
    // A chunk waiting for the data hook is not idleness (a person may hold it): tracked again.
    if (this.waiting.has(WAIT_HOOK)) return this.idle?.add(this);
    this.destroy("idle-timeout");
  }

  private received(data: Buffer): void {
    this.active = true;
    this.bytesUpReceived += data.length;
    const seq = this.seq++;
    let pending = false;
    pending = callHook<DataVerdict>(
      () => this.host.hooks.data({ id: this.host.id, direction: "up", seq, data }, this.host.handle),
      (err) => this.host.hookFailed("data", err),
      (verdict) => {
        // A verdict after the session ended changes nothing and is not reported (see tcp-relay.ts).
        if (this.client.closed) return;
        this.apply(data, seq, verdict);
        if (!pending) return;
        this.waiting.done(WAIT_HOOK);
        this.finishIfDone();
      },
    );
    // One chunk at a time: reading waits for the hook (backpressure, ordered calls).
    if (pending) this.waiting.wait(WAIT_HOOK);
  }

  private apply(data: Buffer, seq: number, verdict: DataVerdict): void {
    const observer = this.host.observer;
    // Nothing goes upstream: the bytes were delivered to the hook. A replace or a drop is still
    // recorded as the hook's answer.
    if (observer.chunk !== undefined) {
      const changed =
        verdict === undefined
          ? {}
          : "replace" in verdict
            ? { sent: verdict.replace, verdict: "replace" as const }
            : { sent: EMPTY, verdict: "drop" in verdict ? ("drop" as const) : "close" in verdict ? ("close" as const) : ("reset" as const) };
      this.waiting.captured(observer.chunk({ id: this.host.id, direction: "up", seq, at: this.host.now(), received: data, ...changed }));
    }
    if (verdict === undefined || "replace" in verdict || "drop" in verdict) return;
    this.close("close" in verdict ? "graceful" : "reset", "closed-by-hook");
  }

  private finishIfDone(): void {
    if (this.clientEnded && !this.waiting.has(WAIT_HOOK) && !this.client.writableEnded) this.client.end();
  }
}
