/**
 * Relays bytes between the client and the upstream after a successful handshake.
 *
 * - Backpressure: each direction has one wait state (direction-wait.ts: DRAIN, HOOK and CAPTURE
 *   reasons; the direction's source is paused while any is set). `writable()` lets an injector pace itself.
 * - Half-close: sockets are allowHalfOpen; a FIN is forwarded with end() and the other direction
 *   keeps flowing (the second FIN, when both are in, with a close: passFin). The session ends
 *   when both sockets have closed.
 * - A reset (or socket error) on one side destroys the other, with a RST when it was a reset.
 * - Fast path: with no data hook, a read is written straight from the socket's read buffer
 *   (socket-reader.ts): one write, two adds, no allocation. A chunk observer sees that same
 *   buffer during its call (it copies what it keeps). With a data hook each read is copied out
 *   first, because the hook may keep it and answers later.
 */
import type { Socket } from "node:net";
import type { Direction } from "../types.js";
import type { ChunkFact, ChunkVerdict, CloseReason, DataVerdict, EngineObserver, HookRunner, SessionHandle } from "../ports.js";
import type { SocketReader } from "./socket-reader.js";
import { callHook } from "./call-hook.js";
import { resetSocket } from "./raw-stream.js";
import { DirectionWait, WAIT_DRAIN, WAIT_HOOK, type WaitReason } from "./direction-wait.js";
import type { IdleSweeper, IdleTracked } from "./idle-sweeper.js";

/** What the relay needs from its session. */
export interface RelayHost {
  readonly id: number;
  readonly observer: EngineObserver;
  readonly hooks: HookRunner;
  readonly handle: SessionHandle;
  readonly now: () => number;
  /** Called once, after both sockets have closed. */
  relayEnded(reason: CloseReason, errno: string | undefined, counts: RelayCounts): void;
  hookFailed(hook: string, err: unknown): void;
}

export interface RelayCounts {
  bytesUpReceived: number;
  bytesUpSent: number;
  bytesDownReceived: number;
  bytesDownSent: number;
}

export class TcpRelay implements RelayCounts, IdleTracked {
  active = false;
  bytesUpReceived = 0;
  bytesUpSent = 0;
  bytesDownReceived = 0;
  bytesDownSent = 0;
  private seq = 0;
  /** Why each direction is not reading: up reads the client, down the upstream. */
  private readonly upWait: DirectionWait;
  private readonly downWait: DirectionWait;
  private openSockets = 2;
  /** Both sockets closed and the end reported. */
  private ended = false;
  private reason: CloseReason | undefined;
  private errno: string | undefined;
  /** Every read goes through the data hook before it is written. */
  private readonly withHooks: boolean;
  /** A chunk observer sees every read. */
  private readonly observed: boolean;

  constructor(
    private readonly host: RelayHost,
    private readonly client: Socket,
    private readonly clientReader: SocketReader,
    private readonly upstream: Socket,
    private readonly upstreamReader: SocketReader,
    private readonly idle: IdleSweeper | undefined,
  ) {
    this.upWait = new DirectionWait(client);
    this.downWait = new DirectionWait(upstream);
    this.withHooks = host.hooks.wantsData();
    this.observed = host.observer.chunk !== undefined;
    idle?.add(this);
    clientReader.sink = this.onClientRead;
    upstreamReader.sink = this.onUpstreamRead;
    client.on("end", this.onClientEnd);
    upstream.on("end", this.onUpstreamEnd);
    client.on("drain", this.onClientDrain);
    upstream.on("drain", this.onUpstreamDrain);
    client.on("error", this.onClientError);
    upstream.on("error", this.onUpstreamError);
    client.on("close", this.onSocketClose);
    upstream.on("close", this.onSocketClose);
  }

  /**
   * Sends the client's early bytes (pipelined behind the request), then starts reading. `down`:
   * bytes already read from the upstream (a TLS gate that found the server speaking first),
   * sent to the client first; `upstreamEnded`: its FIN came before.
   */
  start(early: Buffer, clientEnded: boolean, down?: Buffer, upstreamEnded = false): void {
    if (this.upstream.destroyed) {
      // The target went away while the reply was being decided.
      this.reason = "target-error";
      this.client.destroy();
      this.openSockets = 1;
      this.onSocketClose();
      return;
    }
    if (early.length > 0) {
      this.bytesUpReceived += early.length;
      this.forward("up", early, this.upstream);
    }
    if (down !== undefined && down.length > 0) {
      this.bytesDownReceived += down.length;
      this.forward("down", down, this.client);
    }
    if (clientEnded) this.onClientEnd();
    if (upstreamEnded) this.onUpstreamEnd();
    // Early bytes or injects before the start may already have made a direction wait.
    if (this.upWait.reading) this.client.resume();
    if (this.downWait.reading) this.upstream.resume();
  }

  /** Writes bytes that no socket sent (a hook's inject); they make the direction wait like relayed ones. */
  inject(direction: Direction, data: Uint8Array): void {
    const dst = direction === "up" ? this.upstream : this.client;
    if (dst.writableEnded || dst.destroyed || data.length === 0) return;
    if (direction === "up") this.bytesUpSent += data.length;
    else this.bytesDownSent += data.length;
    if (!dst.write(data)) this.wait(direction, WAIT_DRAIN);
    this.observe(direction, NOTHING_RECEIVED, this.seq++, data, "inject");
  }

  /**
   * undefined when bytes injected toward `direction` can go now; else a promise that settles
   * once neither the destination's drain nor the capture holds that direction (a pending data
   * hook does not count: the injector may be that hook), or the session has ended.
   */
  writable(direction: Direction): Promise<void> | undefined {
    if (this.openSockets < 2) return undefined;
    return this.waitOf(direction).writable();
  }

  /** Ends both sides: FIN (graceful) or RST. */
  close(mode: "graceful" | "reset", reason: CloseReason): void {
    this.reason ??= reason;
    if (mode === "reset") {
      if (!this.client.destroyed) resetSocket(this.client);
      if (!this.upstream.destroyed) resetSocket(this.upstream);
    } else {
      this.client.end();
      this.upstream.end();
      // Nothing more is read; a peer that never closes is cut off by the destroy below.
      this.client.destroySoon();
      this.upstream.destroySoon();
    }
  }

  /** Tears both sockets down now (shutdown, idle). */
  destroy(reason: CloseReason): void {
    this.reason ??= reason;
    this.client.destroy();
    this.upstream.destroy();
  }

  private readonly onClientRead = (view: Buffer): void => {
    this.active = true;
    this.bytesUpReceived += view.length;
    if (this.withHooks) return this.forwardThroughHooks("up", handOver(view, this.clientReader), this.upstream, this.seq++);
    if (this.observed) this.observe("up", view, this.seq++, undefined);
    this.writeView("up", view, this.upstream, this.clientReader);
  };

  private readonly onUpstreamRead = (view: Buffer): void => {
    this.active = true;
    this.bytesDownReceived += view.length;
    if (this.withHooks) return this.forwardThroughHooks("down", handOver(view, this.upstreamReader), this.client, this.seq++);
    if (this.observed) this.observe("down", view, this.seq++, undefined);
    this.writeView("down", view, this.client, this.upstreamReader);
  };

  /**
   * The fast path: write the read buffer itself; if the write is still pending, it keeps it (lent:
   * once `dst` holds nothing unsent, at a later write, the reader may read into it again).
   */
  private writeView(direction: Direction, view: Buffer, dst: Socket, reader: SocketReader): void {
    if (dst.writableEnded || dst.destroyed) return;
    if (direction === "up") this.bytesUpSent += view.length;
    else this.bytesDownSent += view.length;
    if (dst.writableLength === 0) reader.recycle();
    const flowing = dst.write(view);
    if (dst.writableLength > 0) reader.lend();
    if (!flowing) this.wait(direction, WAIT_DRAIN);
  }

  private forward(direction: Direction, chunk: Buffer, dst: Socket): void {
    const seq = this.seq++;
    if (this.withHooks) return this.forwardThroughHooks(direction, chunk, dst, seq);
    this.observe(direction, chunk, seq, undefined);
    this.write(direction, chunk, dst);
  }

  private write(direction: Direction, data: Uint8Array, dst: Socket): void {
    if (dst.writableEnded || dst.destroyed) return;
    if (direction === "up") this.bytesUpSent += data.length;
    else this.bytesDownSent += data.length;
    if (!dst.write(data)) this.wait(direction, WAIT_DRAIN);
  }

  private observe(direction: Direction, received: Buffer, seq: number, sent: Uint8Array | undefined, verdict?: ChunkVerdict): void {
    const observer = this.host.observer;
    if (observer.chunk === undefined) return;
    const fact: ChunkFact = {
      id: this.host.id,
      direction,
      seq,
      at: this.host.now(),
      received,
      ...(sent === undefined ? {} : { sent, verdict: verdict ?? "replace" }),
    };
    // A promise (the capture is behind) makes this direction wait until the latest one settles.
    this.waitOf(direction).captured(observer.chunk(fact));
  }

  /** The slow path: the chunk waits for the data hook's verdict; the direction stops reading meanwhile. */
  private forwardThroughHooks(direction: Direction, chunk: Buffer, dst: Socket, seq: number): void {
    let pending = false;
    pending = callHook<DataVerdict>(
      () => this.host.hooks.data({ id: this.host.id, direction, seq, data: chunk }, this.host.handle),
      (err) => this.host.hookFailed("data", err),
      (verdict) => {
        // A verdict after the session ended (a slow hook, a person who answered late) changes
        // nothing and is not reported: every fact of a session comes before its close.
        if (this.ended) return;
        this.apply(direction, chunk, dst, seq, verdict);
        if (pending) this.done(direction, WAIT_HOOK);
      },
    );
    if (pending) this.wait(direction, WAIT_HOOK);
  }

  private apply(direction: Direction, chunk: Buffer, dst: Socket, seq: number, verdict: DataVerdict): void {
    if (verdict === undefined) {
      this.observe(direction, chunk, seq, undefined);
      return this.write(direction, chunk, dst);
    }
    if ("replace" in verdict) {
      this.observe(direction, chunk, seq, verdict.replace);
      if (verdict.replace.length > 0) this.write(direction, verdict.replace, dst);
    } else if ("drop" in verdict) {
      this.observe(direction, chunk, seq, EMPTY, "drop");
    } else if ("close" in verdict) {
      this.observe(direction, chunk, seq, EMPTY, "close");
      this.close("graceful", "closed-by-hook");
    } else {
      this.observe(direction, chunk, seq, EMPTY, "reset");
      this.close("reset", "closed-by-hook");
    }
  }

  private waitOf(direction: Direction): DirectionWait {
    return direction === "up" ? this.upWait : this.downWait;
  }

  /** Adds a reason for `direction` to wait; the first one pauses its source. */
  private wait(direction: Direction, reason: WaitReason): void {
    this.waitOf(direction).wait(reason);
  }

  /** Clears a reason (if set); the last one resumes the source and wakes paced injectors. */
  private done(direction: Direction, reason: WaitReason): void {
    this.waitOf(direction).done(reason);
  }

  private readonly onUpstreamDrain = (): void => {
    this.done("up", WAIT_DRAIN);
  };

  private readonly onClientDrain = (): void => {
    this.done("down", WAIT_DRAIN);
  };

  private readonly onClientEnd = (): void => {
    passFin(this.upstream);
  };

  private readonly onUpstreamEnd = (): void => {
    passFin(this.client);
  };

  private readonly onClientError = (err: NodeJS.ErrnoException): void => {
    this.failed("client", err);
  };

  private readonly onUpstreamError = (err: NodeJS.ErrnoException): void => {
    this.failed("target", err);
  };

  private failed(side: "client" | "target", err: NodeJS.ErrnoException): void {
    const reset = err.code === "ECONNRESET";
    if (this.reason === undefined) {
      this.reason = side === "client" ? (reset ? "client-reset" : "client-error") : reset ? "target-reset" : "target-error";
      this.errno = err.code;
    }
    // Pass a reset on as a reset, so port scanners and clients see what the target did.
    const other = side === "client" ? this.upstream : this.client;
    if (other.destroyed) return;
    if (reset) resetSocket(other);
    else other.destroy();
  }

  idleTimedOut(): void {
    // A chunk waiting for the data hook is not idleness (a person may hold it: interactive
    // intercept): the tunnel is tracked again, its idle time counted from now.
    if (this.upWait.has(WAIT_HOOK) || this.downWait.has(WAIT_HOOK)) return this.idle?.add(this);
    this.destroy("idle-timeout");
  }

  private readonly onSocketClose = (): void => {
    // A closed side takes no more bytes and sends no drain: paced injectors stop waiting (what
    // they write now is ignored).
    this.upWait.wakeWriters();
    this.downWait.wakeWriters();
    if (--this.openSockets > 0) {
      // One side is gone, so the other can neither send nor receive anything more: let it
      // flush what is queued for it, then close.
      const other = this.client.destroyed ? this.upstream : this.client;
      if (!other.destroyed) other.destroySoon();
      return;
    }
    this.idle?.delete(this);
    this.ended = true;
    this.host.relayEnded(this.reason ?? "completed", this.errno, this);
  };
}

/**
 * Passes a FIN on to `to`: end() (shutdown; the other direction keeps flowing). When `to` has
 * sent its own FIN already (both directions are done) and nothing written to it is unsent, it is
 * closed at once instead: close() sends the FIN just the same (its receive queue is empty, so no
 * RST), without the shutdown's write watch, extra turn of the event loop and system call. Not a
 * TLS socket, whose end() sends close_notify first.
 */
function passFin(to: Socket): void {
  if (to.writableEnded) return;
  if (to.readableEnded && to.writableLength === 0 && (to as { encrypted?: unknown }).encrypted !== true) to.destroy();
  else to.end();
}

const EMPTY = new Uint8Array(0);
const NOTHING_RECEIVED = Buffer.alloc(0);

/**
 * A read for a data hook, which may keep it: a read that filled most of its buffer is handed
 * over as it is (the reader takes a fresh buffer for the next read, so nothing is copied); a
 * small one is copied, so that a kept chunk does not pin a buffer many times its size.
 */
function handOver(view: Buffer, reader: SocketReader): Buffer {
  if (view.length * 2 < view.buffer.byteLength) return Buffer.from(view);
  reader.retain();
  return view;
}
