/**
 * A CONNECT that a hook chose to serve itself (`{ serve: true }`): there is no upstream. Client
 * bytes go to the data hook (direction "up") and nowhere else; the hook answers with
 * `inject("down", …)`, and ends the session with `{ close: true }` or `{ reset: true }`.
 * A client FIN is answered with a FIN once the hook has seen everything before it.
 */
import type { Socket } from "node:net";
import type { Direction } from "../types.js";
import type { CloseReason, DataVerdict } from "../ports.js";
import type { RelayCounts, RelayHost } from "./tcp-relay.js";
import type { SocketReader } from "./socket-reader.js";
import type { IdleSweeper, IdleTracked } from "./idle-sweeper.js";
import { callHook } from "./call-hook.js";

const EMPTY = new Uint8Array(0);
const NOTHING_RECEIVED = Buffer.alloc(0);

export class ServedRelay implements RelayCounts, IdleTracked {
  active = false;
  bytesUpReceived = 0;
  bytesUpSent = 0;
  bytesDownReceived = 0;
  bytesDownSent = 0;
  private seq = 0;
  private pending = 0;
  private clientEnded = false;
  private reason: CloseReason | undefined;
  private errno: string | undefined;

  constructor(
    private readonly host: RelayHost,
    private readonly client: Socket,
    reader: SocketReader,
    private readonly idle: IdleSweeper | undefined,
  ) {
    reader.sink = (view) => this.received(Buffer.from(view));
    client.on("end", () => {
      this.clientEnded = true;
      this.finishIfDone();
    });
    client.on("error", (err: NodeJS.ErrnoException) => {
      this.reason ??= err.code === "ECONNRESET" ? "client-reset" : "client-error";
      this.errno ??= err.code;
    });
    client.on("close", () => {
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
    this.client.resume();
  }

  inject(direction: Direction, data: Uint8Array): void {
    // There is no upstream: only bytes for the client go anywhere.
    if (direction !== "down" || this.client.writableEnded || this.client.destroyed || data.length === 0) return;
    // The hook is this session's server: what it writes counts as received from the target too.
    this.bytesDownReceived += data.length;
    this.bytesDownSent += data.length;
    this.client.write(data);
    this.host.observer.chunk?.({ id: this.host.id, direction: "down", seq: this.seq++, at: this.host.now(), received: NOTHING_RECEIVED, sent: data, verdict: "inject" });
  }

  close(mode: "graceful" | "reset", reason: CloseReason): void {
    this.reason ??= reason;
    if (mode === "reset") {
      if (!this.client.destroyed) this.client.resetAndDestroy();
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
    this.destroy("idle-timeout");
  }

  private received(data: Buffer): void {
    this.active = true;
    this.bytesUpReceived += data.length;
    const seq = this.seq++;
    let waiting = false;
    waiting = callHook<DataVerdict>(
      () => this.host.hooks.data({ id: this.host.id, direction: "up", seq, data }, this.host.handle),
      (err) => this.host.hookFailed("data", err),
      (verdict) => {
        this.apply(data, seq, verdict);
        if (!waiting) return;
        this.pending--;
        if (!this.client.destroyed) this.client.resume();
        this.finishIfDone();
      },
    );
    if (waiting) {
      // One chunk at a time: reading waits for the hook (backpressure, ordered calls).
      this.pending++;
      this.client.pause();
    }
  }

  private apply(data: Buffer, seq: number, verdict: DataVerdict): void {
    const observer = this.host.observer;
    // Nothing goes upstream: the bytes were delivered to the hook. A replace or a drop is still
    // recorded as the hook's answer.
    if (observer.chunk !== undefined) {
      const changed =
        verdict === undefined ? {} : "replace" in verdict ? { sent: verdict.replace, verdict: "replace" as const } : { sent: EMPTY, verdict: "drop" in verdict ? ("drop" as const) : "close" in verdict ? ("close" as const) : ("reset" as const) };
      void observer.chunk({ id: this.host.id, direction: "up", seq, at: this.host.now(), received: data, ...changed });
    }
    if (verdict === undefined || "replace" in verdict || "drop" in verdict) return;
    this.close("close" in verdict ? "graceful" : "reset", "closed-by-hook");
  }

  private finishIfDone(): void {
    if (this.clientEnded && this.pending === 0 && !this.client.writableEnded) this.client.end();
  }
}
