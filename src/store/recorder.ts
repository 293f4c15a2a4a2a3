/**
 * The recorder: an EngineObserver that writes every fact to the capture file without slowing
 * the relay.
 *
 * - The main thread only copies payload into the current batch's arena and appends small
 *   operation records; a worker thread (writer-worker.ts) does all SQLite work, one transaction
 *   per batch. A batch is sent at least every `flushIntervalMs` (100 ms), sooner when its arena
 *   fills up.
 * - Backpressure, not loss: when more than `highWaterBytes` is held (payload sent to the writer
 *   but not yet written, plus what is being batched, plus an estimate of OP_BYTES per queued
 *   operation), `chunk()` returns a promise and the engine stops reading that direction until the
 *   writer has caught up to half of it.
 * - UDP cannot be paused: while the capture is over `highWaterBytes`, a datagram's record is left
 *   out (the datagram itself was relayed) and counted on its session (`uncaptured_datagrams`),
 *   with one `capture` event per burst of such drops. So what the recorder holds stays within
 *   `highWaterBytes` plus one read or datagram, whatever the traffic.
 * - `captureLimit` bounds the payload kept per session (received and sent bytes together); the
 *   byte counters stay exact and the session is marked truncated.
 * - A write failure (disk full, I/O error) stops capture, not the proxy: the recorder reports it
 *   once through `failed` and turns into a no-op; the CLI decides whether to stop.
 */
import { existsSync } from "node:fs";
import { Worker } from "node:worker_threads";
import type {
  AnomalyFact,
  AuthFact,
  ChunkFact,
  DatagramFact,
  EngineObserver,
  ReplyFact,
  RequestFact,
  SessionClosedFact,
  SessionOpenedFact,
} from "../engine/index.js";
import type { Batch, Operation, Slice, WriterReply, WriterRequest } from "./batch.js";
import { CaptureError, beginRun, describe, openCapture } from "./database.js";
import type { SessionStatus } from "./schema.js";
import { ProtocolSniffer, type Detection } from "../detect/index.js";

export interface RecorderOptions {
  /** Payload bytes kept per session; undefined keeps everything. */
  readonly captureLimit?: number;
  /** The longest a fact waits before it is on its way to the file (default 100 ms). */
  readonly flushIntervalMs?: number;
  /** Payload bytes not yet written beyond which the relay is paused (default 64 MiB). */
  readonly highWaterBytes?: number;
  /** Listen addresses, recorded with the run. */
  readonly listen?: readonly string[];
  readonly version?: string;
  readonly now?: () => number;
  /** Called once when capture stops because of a write error. */
  readonly failed?: (error: CaptureError) => void;
  /** Tests: bound the file's size in pages to provoke "disk full". */
  readonly maxPageCount?: number;
}

/** What an addon did, as the recorder stores it (the dispatcher's events, in store terms). */
export interface AddonEvent {
  readonly session?: number;
  readonly addon: string;
  readonly hook?: string;
  readonly location?: string;
  readonly code?: string;
  readonly message: string;
}

interface SessionState {
  readonly sid: number;
  readonly clientPort: number;
  version: string | null;
  command: string | null;
  rep: number | undefined;
  code: string | undefined;
  upReceived: number;
  upSent: number;
  downReceived: number;
  downSent: number;
  captured: number;
  truncated: boolean;
  /** Datagram records left out, in all and in the current burst (reported when it ends). */
  uncaptured: number;
  burst: number;
  burstAt: number;
  dirty: boolean;
  /** Created at the first client bytes; "done" once it decided. */
  sniffer: ProtocolSniffer | "done" | undefined;
  tags: Record<string, string> | undefined;
}

const ARENA_BYTES = 4 * 1024 * 1024;
/** Arenas kept for reuse; more in flight than this are allocated and left to the GC. */
const SPARE_ARENAS = 8;
const MAX_OPS = 4096;
/** What one queued operation is counted as against `highWaterBytes` (its object, roughly). */
const OP_BYTES = 256;

export class Recorder implements EngineObserver {
  /** The file's id for this run's sessions: `sessionBase + engine session id`. */
  readonly sessionBase: number;
  readonly runId: number;
  /** Sessions that earlier runs left open, marked interrupted when this one began. */
  readonly interrupted: number;
  private readonly worker: Worker;
  private readonly sessions = new Map<number, SessionState>();
  private readonly dirty = new Set<SessionState>();
  /** Replays announced by client port, waiting for their session to open. */
  private readonly replays = new Map<number, { original: number; resolve: (sid: number) => void }>();
  private ops: Operation[] = [];
  private arena: Buffer | undefined;
  /** Arenas the writer sent back, ready to be filled again. */
  private readonly spare: Buffer[] = [];
  private used = 0;
  private batchSeq = 0;
  private inflight = 0;
  private waiting: { promise: Promise<void>; resolve: () => void } | undefined;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;
  private failure: CaptureError | undefined;
  private readonly limit: number;
  private readonly highWater: number;
  private readonly now: () => number;
  private stoppedWorker: Promise<void> | undefined;

  /**
   * Opens (or creates) the capture file, checks it can be written, begins a run and starts the
   * writer. Throws a CaptureError with a clear message when the file cannot be used.
   */
  constructor(
    readonly file: string,
    private readonly options: RecorderOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.limit = options.captureLimit ?? Number.POSITIVE_INFINITY;
    this.highWater = options.highWaterBytes ?? 64 * 1024 * 1024;
    const db = openCapture(file);
    try {
      const run = beginRun(db, file, { listen: options.listen ?? [], version: options.version ?? "unknown", now: this.now() });
      this.runId = run.runId;
      this.sessionBase = run.sessionBase;
      this.interrupted = run.interrupted;
    } catch (err) {
      throw err instanceof CaptureError ? err : describe(file, err);
    } finally {
      db.close();
    }
    this.worker = new Worker(workerFile());
    this.worker.on("message", this.onReply);
    this.worker.on("error", (err) => this.fail(err));
    this.worker.unref();
    this.post({ type: "start", file, runId: this.runId, ...(options.maxPageCount === undefined ? {} : { maxPageCount: options.maxPageCount }) });
    this.timer = setInterval(() => this.flush(), options.flushIntervalMs ?? 100);
    this.timer.unref();
  }

  /** Payload bytes seen so far (received, both directions, TCP and UDP): for throughput figures. */
  bytesSeen = 0;

  /**
   * What the capture holds now against `highWaterBytes`: sent to the writer and not yet written,
   * plus the batch being filled (payload and OP_BYTES per operation). Tests check its bound.
   */
  get held(): number {
    return this.inflight + this.used + this.ops.length * OP_BYTES;
  }

  /** The most `held` has been since the recorder started. */
  maxHeld = 0;

  /** The capture's id of an engine session of this run. */
  sessionId(engineId: number): number {
    return this.sessionBase + engineId;
  }

  /** Whether capture has stopped after a write error. */
  get capturing(): boolean {
    return this.failure === undefined && !this.stopped;
  }

  // --- EngineObserver --------------------------------------------------------------------------

  sessionOpened(f: SessionOpenedFact): void {
    if (!this.capturing) return;
    const state: SessionState = {
      sid: this.sessionId(f.id),
      clientPort: f.client.port,
      version: null,
      command: null,
      rep: undefined,
      code: undefined,
      upReceived: 0,
      upSent: 0,
      downReceived: 0,
      downSent: 0,
      captured: 0,
      truncated: false,
      uncaptured: 0,
      burst: 0,
      burstAt: 0,
      dirty: false,
      sniffer: undefined,
      tags: undefined,
    };
    this.sessions.set(f.id, state);
    const replay = this.replays.get(f.client.port);
    this.ops.push({
      op: "open",
      sid: state.sid,
      engineId: f.id,
      at: f.at,
      clientHost: f.client.host,
      clientPort: f.client.port,
      localHost: f.local.host,
      localPort: f.local.port,
    });
    if (replay !== undefined) {
      this.replays.delete(f.client.port);
      this.ops.push({ op: "links", sid: state.sid, replayOf: replay.original, servedFrom: null });
      replay.resolve(state.sid);
    }
  }

  authenticated(f: AuthFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    state.version = String(f.version);
    const method =
      f.method === undefined ? "socks4" : f.method === 0 ? "none" : f.method === 2 ? "userpass" : f.method === 0xff ? "no-acceptable" : `method-${f.method}`;
    this.ops.push({ op: "auth", sid: state.sid, version: state.version, method, offered: f.offered, user: f.user ?? null });
  }

  requested(f: RequestFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    state.version = String(f.version);
    state.command = f.command;
    this.ops.push({
      op: "request",
      sid: state.sid,
      at: f.at,
      version: state.version,
      command: f.command,
      type: f.destination.type,
      host: f.destination.host,
      port: f.destination.port,
      user: f.user ?? null,
    });
  }

  replied(f: ReplyFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    state.rep = f.rep;
    state.code = f.code;
    this.ops.push({
      op: "reply",
      sid: state.sid,
      at: f.at,
      rep: f.rep,
      code: f.code ?? null,
      errno: f.errno ?? null,
      boundHost: f.bound.host,
      boundPort: f.bound.port,
      targetHost: f.target?.host ?? null,
      targetPort: f.target?.port ?? null,
      remoteHost: f.remote?.host ?? null,
      remotePort: f.remote?.port ?? null,
      attempts: f.attempts === undefined || f.attempts.length === 0 ? null : JSON.stringify(f.attempts),
    });
  }

  anomaly(f: AnomalyFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    this.event(state.sid, f.at, "anomaly", { code: f.code, message: f.detail });
  }

  chunk(f: ChunkFact): void | Promise<void> {
    const state = this.live(f.id);
    if (state === undefined) return;
    const received = f.received.length;
    this.bytesSeen += received;
    if (f.verdict !== "inject") {
      if (f.direction === "up") state.upReceived += received;
      else state.downReceived += received;
    }
    const sentLength = f.sent === undefined ? received : f.sent.length;
    if (f.direction === "up") state.upSent += sentLength;
    else state.downSent += sentLength;
    if (f.direction === "up" && received > 0) this.sniff(state, f.received);
    const data = this.keep(state, f.received);
    const sent = f.sent === undefined ? null : this.keep(state, f.sent);
    this.ops.push({ op: "chunk", sid: state.sid, seq: f.seq, at: f.at, direction: f.direction, data, size: received, sent, verdict: f.verdict ?? null });
    this.touch(state);
    return this.backpressure();
  }

  datagram(f: DatagramFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    this.bytesSeen += f.received.length;
    if (this.held + f.received.length + (f.sent?.length ?? 0) + OP_BYTES > this.highWater) {
      // Behind: the record is left out and counted; the datagram was relayed all the same.
      if (state.burst++ === 0) state.burstAt = f.at;
      state.uncaptured++;
      this.touch(state);
      return;
    }
    this.endBurst(state);
    const data = this.keep(state, f.received);
    const sent = f.sent === undefined ? null : this.keep(state, f.sent);
    this.ops.push({
      op: "datagram",
      sid: state.sid,
      seq: f.seq,
      at: f.at,
      direction: f.direction,
      peerType: f.peer?.type ?? null,
      peerHost: f.peer?.host ?? null,
      peerPort: f.peer?.port ?? null,
      fromHost: f.from.host,
      fromPort: f.from.port,
      toHost: f.to?.host ?? null,
      toPort: f.to?.port ?? null,
      data,
      size: f.received.length,
      sent,
      verdict: f.verdict,
      reason: f.reason ?? null,
      detail: f.detail ?? null,
    });
    this.touch(state);
    this.maxHeld = Math.max(this.maxHeld, this.held);
    if (this.used >= ARENA_BYTES || this.ops.length >= MAX_OPS) this.flush();
  }

  /** One event per burst of left-out datagram records, once it is over (or the session ends). */
  private endBurst(state: SessionState): void {
    if (state.burst === 0) return;
    const n = state.burst;
    state.burst = 0;
    this.event(state.sid, state.burstAt, "capture", {
      code: "datagrams-not-captured",
      message: `${n} datagram record${n === 1 ? " was" : "s were"} left out: the capture was behind (the datagrams themselves were relayed)`,
    });
  }

  sessionClosed(f: SessionClosedFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    this.sessions.delete(f.id);
    this.dirty.delete(state);
    this.endBurst(state);
    this.ops.push({
      op: "close",
      sid: state.sid,
      at: f.at,
      status: statusOf(state.rep, state.code, f.reason),
      reason: f.reason,
      errno: f.errno ?? null,
      upReceived: f.bytesUpReceived,
      upSent: f.bytesUpSent,
      downReceived: f.bytesDownReceived,
      downSent: f.bytesDownSent,
      captured: state.captured,
      truncated: state.truncated,
      uncaptured: state.uncaptured,
    });
  }

  // --- What addons did ---------------------------------------------------------------------------

  hookFailed(e: AddonEvent): void {
    this.addonEvent("hook-error", e);
  }

  addonLogged(e: AddonEvent): void {
    this.addonEvent("addon-log", e);
  }

  tagged(engineId: number, key: string, value: string): void {
    const state = this.live(engineId);
    if (state === undefined) return;
    state.tags = { ...state.tags, [key]: value };
    this.ops.push({ op: "tags", sid: state.sid, tags: JSON.stringify(state.tags) });
  }

  /**
   * The session whose client connects from `clientPort` (now or soon) is a replay of `original`:
   * resolves with its capture id once it has opened. Used by the TUI's replay through this proxy.
   */
  replayFrom(clientPort: number, original: number): Promise<number> {
    for (const [engineId, state] of this.sessions) {
      if (state.clientPort === clientPort) {
        this.ops.push({ op: "links", sid: state.sid, replayOf: original, servedFrom: null });
        return Promise.resolve(this.sessionId(engineId));
      }
    }
    return new Promise((resolve) => this.replays.set(clientPort, { original, resolve }));
  }

  /** A session of this run was answered from recorded session `recordedId` (server replay). */
  served(engineId: number, recordedId: number): void {
    const state = this.live(engineId);
    if (state === undefined) return;
    this.ops.push({ op: "links", sid: state.sid, replayOf: null, servedFrom: recordedId });
  }

  // --- Lifecycle ---------------------------------------------------------------------------------

  /** Writes what is pending, marks the run ended and closes the file. */
  async close(): Promise<void> {
    if (this.stoppedWorker !== undefined) return this.stoppedWorker;
    clearInterval(this.timer);
    this.flush();
    this.stopped = true;
    // An unref'd worker would let the process exit before the file is closed.
    this.worker.ref();
    this.stoppedWorker = new Promise<void>((resolve) => {
      const done = (): void => resolve();
      this.worker.once("exit", done);
      this.post({ type: "stop", at: this.now() });
    });
    this.release();
    return this.stoppedWorker;
  }

  /** Sends the current batch to the writer. */
  flush(): void {
    if (this.failure !== undefined) return;
    for (const state of this.dirty) {
      state.dirty = false;
      this.ops.push({
        op: "progress",
        sid: state.sid,
        upReceived: state.upReceived,
        upSent: state.upSent,
        downReceived: state.downReceived,
        downSent: state.downSent,
        captured: state.captured,
        truncated: state.truncated,
        uncaptured: state.uncaptured,
      });
    }
    this.dirty.clear();
    if (this.ops.length === 0) return;
    const batch: Batch = { seq: ++this.batchSeq, ops: this.ops, bytes: this.used, ...(this.arena === undefined || this.used === 0 ? {} : { arena: this.arena.buffer as ArrayBuffer }) };
    this.inflight += this.used + this.ops.length * OP_BYTES;
    this.post({ type: "batch", batch }, batch.arena === undefined ? [] : [batch.arena]);
    this.ops = [];
    if (batch.arena !== undefined) this.arena = undefined;
    this.used = 0;
  }

  // --- Internals ---------------------------------------------------------------------------------

  private live(engineId: number): SessionState | undefined {
    if (this.failure !== undefined || this.stopped) return undefined;
    return this.sessions.get(engineId);
  }

  private touch(state: SessionState): void {
    if (!state.dirty) {
      state.dirty = true;
      this.dirty.add(state);
    }
  }

  private event(sid: number | null, at: number, kind: string, e: { addon?: string; hook?: string; location?: string; code?: string; message: string }): void {
    this.ops.push({ op: "event", sid, at, kind, addon: e.addon ?? null, hook: e.hook ?? null, location: e.location ?? null, code: e.code ?? null, message: e.message });
  }

  private addonEvent(kind: string, e: AddonEvent): void {
    if (!this.capturing) return;
    let sid: number | null = null;
    if (e.session !== undefined) {
      const state = this.sessions.get(e.session);
      // An event for a session that has closed still belongs to it.
      sid = state?.sid ?? this.sessionId(e.session);
    }
    this.event(sid, this.now(), kind, e);
  }

  /** Feeds the client's first bytes to the protocol sniffer until it decides. */
  private sniff(state: SessionState, bytes: Uint8Array): void {
    if (state.sniffer === "done") return;
    state.sniffer ??= new ProtocolSniffer();
    const detection = state.sniffer.push(bytes);
    if (detection.kind === "need-more") return;
    state.sniffer = "done";
    const stored = storedDetection(detection);
    if (stored !== undefined) this.ops.push({ op: "detected", sid: state.sid, ...stored });
  }

  /** Copies bytes into the arena, within the session's capture limit. */
  private keep(state: SessionState, bytes: Uint8Array): Slice {
    let length = bytes.length;
    const room = this.limit - state.captured;
    if (length > room) {
      length = Math.max(0, room);
      if (!state.truncated) {
        state.truncated = true;
        this.event(state.sid, this.now(), "capture", { code: "truncated", message: `payload beyond ${this.limit} bytes is not kept (--capture-limit); byte counts stay exact` });
      }
    }
    if (length === 0) return { offset: 0, length: 0 };
    state.captured += length;
    if (this.arena === undefined || this.used + length > this.arena.length) {
      if (this.used > 0) this.flush();
      this.arena = (length <= ARENA_BYTES ? this.spare.pop() : undefined) ?? Buffer.allocUnsafeSlow(Math.max(ARENA_BYTES, length));
      this.used = 0;
    }
    const offset = this.used;
    this.arena.set(length === bytes.length ? bytes : bytes.subarray(0, length), offset);
    this.used += length;
    return { offset, length };
  }

  /** A promise while too much is unwritten (the engine pauses the direction until it settles). */
  private backpressure(): Promise<void> | undefined {
    this.maxHeld = Math.max(this.maxHeld, this.held);
    if (this.used >= ARENA_BYTES || this.ops.length >= MAX_OPS) this.flush();
    if (this.held <= this.highWater) return undefined;
    this.flush();
    if (this.waiting === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.waiting = { promise, resolve };
    }
    return this.waiting.promise;
  }

  private release(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve();
  }

  private post(request: WriterRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(request, transfer);
  }

  private readonly onReply = (reply: WriterReply): void => {
    switch (reply.type) {
      case "ack":
        this.inflight -= reply.bytes + reply.ops * OP_BYTES;
        if (reply.arena !== undefined && reply.arena.byteLength === ARENA_BYTES && this.spare.length < SPARE_ARENAS) this.spare.push(Buffer.from(reply.arena));
        if (this.inflight <= this.highWater / 2) this.release();
        return;
      case "failed":
        this.fail(Object.assign(new Error(reply.message), reply.code === undefined ? {} : { code: reply.code }));
        return;
      case "stopped":
        return;
    }
  };

  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = describe(this.file, err);
    this.sessions.clear();
    this.dirty.clear();
    this.ops = [];
    this.arena = undefined;
    this.used = 0;
    this.release();
    this.options.failed?.(this.failure);
  }
}

/** How a session ended, in the filter language's terms. */
export function statusOf(rep: number | undefined, code: string | undefined, reason: string): SessionStatus {
  if (rep === 0) return "ok";
  if (reason === "auth-failed" || reason === "rejected" || reason === "session-limit") return "denied";
  if (rep === 0x02 || code === "DENIED") return "denied";
  return "failed";
}

export function storedDetection(d: Detection): { protocol: string; sni: string | null; info: string | null } | undefined {
  switch (d.kind) {
    case "need-more":
    case "unknown":
      return undefined;
    case "tls":
      return { protocol: "tls", sni: d.sni ?? null, info: JSON.stringify({ alpn: d.alpn, ...(d.version === undefined ? {} : { version: d.version }) }) };
    case "http":
      return { protocol: "http", sni: d.host ?? null, info: JSON.stringify({ method: d.method, path: d.path, host: d.host, version: d.version }) };
    case "http2":
      return { protocol: "http2", sni: null, info: null };
    case "ssh":
      return { protocol: "ssh", sni: null, info: JSON.stringify({ banner: d.banner }) };
  }
}

/** dist/capture-worker.js: next to the CLI bundle, or built from the sources (tests). */
function workerFile(): URL {
  const beside = new URL("./capture-worker.js", import.meta.url);
  if (existsSync(beside)) return beside;
  return new URL("../../dist/capture-worker.js", import.meta.url);
}
