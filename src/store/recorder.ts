/**
 * The recorder: an EngineObserver that maps every engine fact (and what addons did) to capture
 * operations, and hands them to the transport to the writer thread (capture-transport.ts), which
 * batches them and keeps what is held within `highWaterBytes` without slowing the relay.
 *
 * - Backpressure, not loss: `chunk()` returns the transport's promise while too much is held,
 *   and the engine stops reading that direction until the writer has caught up.
 * - UDP cannot be paused: while the capture has no room, a datagram's record is left out (the
 *   datagram itself was relayed) and counted on its session (`uncaptured_datagrams`), with one
 *   `capture` event per burst of such drops. So what the capture holds stays within
 *   `highWaterBytes` plus one read or datagram, whatever the traffic.
 * - `captureLimit` bounds the payload kept per session (received and sent bytes together); the
 *   byte counters stay exact and the session is marked truncated.
 * - Per-session counters go out as one `progress` record per session per batch, not per chunk.
 * - A write failure (disk full, I/O error) stops capture, not the proxy: the recorder reports it
 *   once through `failed` and turns into a no-op; the CLI decides whether to stop.
 */
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
  TlsFact,
} from "../engine/index.js";
import { CaptureError, beginRun, describe, openCapture } from "./database.js";
import { CaptureTransport } from "./capture-transport.js";
import { statusOf, storedDetection, storedRoute, tlsEventMessage, tlsRow } from "./stored-values.js";
import { ProtocolSniffer } from "../detect/index.js";

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
  /** The destination as requested: what a TLS event names when the client sent no SNI. */
  host: string | null;
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

export class Recorder implements EngineObserver {
  /** The file's id for this run's sessions: `sessionBase + engine session id`. */
  readonly sessionBase: number;
  readonly runId: number;
  /** Sessions that earlier runs left open, marked interrupted when this one began. */
  readonly interrupted: number;
  private readonly transport: CaptureTransport;
  private readonly sessions = new Map<number, SessionState>();
  private readonly dirty = new Set<SessionState>();
  /** Replays announced by client port, waiting for their session to open. */
  private readonly replays = new Map<number, { original: number; resolve: (sid: number) => void }>();
  private readonly limit: number;
  private readonly now: () => number;

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
    this.transport = new CaptureTransport(file, this.runId, {
      ...(options.flushIntervalMs === undefined ? {} : { flushIntervalMs: options.flushIntervalMs }),
      ...(options.highWaterBytes === undefined ? {} : { highWaterBytes: options.highWaterBytes }),
      ...(options.maxPageCount === undefined ? {} : { maxPageCount: options.maxPageCount }),
      now: this.now,
      beforeFlush: this.pushProgress,
      failed: this.onFailed,
    });
  }

  /** Payload bytes seen so far (received, both directions, TCP and UDP): for throughput figures. */
  bytesSeen = 0;

  /** What the capture holds now against `highWaterBytes` (see capture-transport.ts). Tests check its bound. */
  get held(): number {
    return this.transport.held;
  }

  /** The most `held` has been since the recorder started. */
  get maxHeld(): number {
    return this.transport.maxHeld;
  }

  /** The capture's id of an engine session of this run. */
  sessionId(engineId: number): number {
    return this.sessionBase + engineId;
  }

  /** Whether capture has stopped after a write error. */
  get capturing(): boolean {
    return this.transport.capturing;
  }

  // --- EngineObserver --------------------------------------------------------------------------

  sessionOpened(f: SessionOpenedFact): void {
    if (!this.capturing) return;
    const state: SessionState = {
      sid: this.sessionId(f.id),
      clientPort: f.client.port,
      version: null,
      command: null,
      host: null,
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
    this.transport.sessionOpen(state.sid, f.id, f.at, f.client.host, f.client.port, f.local.host, f.local.port);
    if (replay !== undefined) {
      this.replays.delete(f.client.port);
      this.transport.push({ op: "links", sid: state.sid, replayOf: replay.original, servedFrom: null });
      replay.resolve(state.sid);
    }
  }

  authenticated(f: AuthFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    state.version = String(f.version);
    const method =
      f.method === undefined ? "socks4" : f.method === 0 ? "none" : f.method === 2 ? "userpass" : f.method === 0xff ? "no-acceptable" : `method-${f.method}`;
    this.transport.sessionAuth(state.sid, state.version, method, JSON.stringify(f.offered), f.user ?? null);
  }

  requested(f: RequestFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    state.version = String(f.version);
    state.command = f.command;
    state.host = f.destination.host;
    this.transport.sessionRequest(state.sid, f.at, state.version, f.command, f.destination.type, f.destination.host, f.destination.port, f.user ?? null);
  }

  replied(f: ReplyFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    state.rep = f.rep;
    state.code = f.code;
    const { target, remote } = f;
    this.transport.sessionReply(
      state.sid,
      f.at,
      f.rep,
      f.code ?? null,
      f.errno ?? null,
      f.bound.host,
      f.bound.port,
      target === undefined ? null : target.host,
      target === undefined ? null : target.port,
      remote === undefined ? null : remote.host,
      remote === undefined ? null : remote.port,
      f.attempts === undefined || f.attempts.length === 0 ? null : JSON.stringify(f.attempts),
      storedRoute(f.route),
    );
  }

  anomaly(f: AnomalyFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    this.event(state.sid, f.at, "anomaly", { code: f.code, message: f.detail });
  }

  /**
   * A tunnel that began with a ClientHello: its `tls` row, and an event when a handshake failed
   * or the tunnel passed through untouched (stored-values.ts words both).
   */
  tls(f: TlsFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    this.transport.push({ op: "tls", sid: state.sid, row: tlsRow(f) });
    const event = tlsEventMessage(f, state.host);
    if (event !== undefined) this.event(state.sid, f.at, "tls", event);
    this.transport.commit();
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
    const sentBytes = f.sent === undefined ? received : f.sent.length;
    if (f.direction === "up") state.upSent += sentBytes;
    else state.downSent += sentBytes;
    if (f.direction === "up" && received > 0) this.sniff(state, f.received);
    const dataLength = this.keep(state, received);
    const sentKept = f.sent === undefined ? 0 : this.keep(state, f.sent.length);
    this.transport.chunk(state.sid, f.seq, f.at, f.direction === "down", f.received, dataLength, f.sent, sentKept, f.verdict ?? null);
    this.touch(state);
    return this.transport.commitOrWait();
  }

  datagram(f: DatagramFact): void {
    const state = this.live(f.id);
    if (state === undefined) return;
    this.bytesSeen += f.received.length;
    // The session's running counts, as the association counts them at its close (what went out
    // each way), so that an open association's row (the TUI, `sessions`) and one cut short by a
    // crash show its bytes, not 0 until it closes.
    if (f.verdict !== "dropped") {
      const bytes = f.sent?.length ?? f.received.length;
      if (f.direction === "up") {
        state.upReceived += bytes;
        state.upSent += bytes;
      } else {
        state.downReceived += bytes;
        state.downSent += bytes;
      }
    }
    if (!this.transport.hasRoom(f.received.length + (f.sent?.length ?? 0))) {
      // Behind: the record is left out and counted; the datagram was relayed all the same.
      if (state.burst++ === 0) state.burstAt = f.at;
      state.uncaptured++;
      this.touch(state);
      return;
    }
    this.endBurst(state);
    const dataLength = this.keep(state, f.received.length);
    const sentLength = f.sent === undefined ? 0 : this.keep(state, f.sent.length);
    const { peer, to } = f;
    this.transport.datagram(
      state.sid,
      f.seq,
      f.at,
      f.direction === "down",
      f.received,
      dataLength,
      f.sent,
      sentLength,
      f.verdict,
      peer === undefined ? null : peer.type,
      peer === undefined ? null : peer.host,
      peer === undefined ? null : peer.port,
      f.from.host,
      f.from.port,
      to === undefined ? null : to.host,
      to === undefined ? null : to.port,
      f.reason ?? null,
      f.detail ?? null,
    );
    this.touch(state);
    this.transport.commit();
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
    this.transport.sessionClose(
      state.sid,
      f.at,
      statusOf(state.rep, state.code, f.reason),
      f.reason,
      f.errno ?? null,
      f.bytesUpReceived,
      f.bytesUpSent,
      f.bytesDownReceived,
      f.bytesDownSent,
      state.captured,
      state.truncated,
      state.uncaptured,
    );
  }

  // --- What addons did ---------------------------------------------------------------------------

  hookFailed(e: AddonEvent): void {
    this.addonEvent("hook-error", e);
  }

  addonLogged(e: AddonEvent): void {
    this.addonEvent("addon-log", e);
  }

  /**
   * A person changed a session through interactive intercept (`run --intercept`): an `intercept`
   * event with the action as its code. The chunk's own row keeps what was received and what was
   * sent.
   */
  intercepted(engineId: number, what: { readonly action: string; readonly detail: string }): void {
    const state = this.live(engineId);
    if (state === undefined) return;
    this.event(state.sid, Date.now(), "intercept", { code: what.action, message: `edited by a person: ${what.detail}` });
  }

  tagged(engineId: number, key: string, value: string): void {
    const state = this.live(engineId);
    if (state === undefined) return;
    state.tags = { ...state.tags, [key]: value };
    this.transport.push({ op: "tags", sid: state.sid, tags: JSON.stringify(state.tags) });
  }

  /**
   * The session whose client connects from `clientPort` (now or soon) is a replay of `original`:
   * resolves with its capture id once it has opened. Used by the TUI's replay through this proxy.
   */
  replayFrom(clientPort: number, original: number): Promise<number> {
    for (const [engineId, state] of this.sessions) {
      if (state.clientPort === clientPort) {
        this.transport.push({ op: "links", sid: state.sid, replayOf: original, servedFrom: null });
        return Promise.resolve(this.sessionId(engineId));
      }
    }
    return new Promise((resolve) => this.replays.set(clientPort, { original, resolve }));
  }

  /** A session of this run was answered from recorded session `recordedId` (server replay) of this file, or of `otherFile`. */
  served(engineId: number, recordedId: number, otherFile?: string): void {
    const state = this.live(engineId);
    if (state === undefined) return;
    // `served_from` names a session of this file; one of another file is told by an event instead.
    if (otherFile !== undefined)
      return this.event(state.sid, Date.now(), "replay", { code: "served-from", message: `served from ${otherFile} session ${recordedId}` });
    this.transport.push({ op: "links", sid: state.sid, replayOf: null, servedFrom: recordedId });
  }

  // --- Lifecycle ---------------------------------------------------------------------------------

  /** Writes what is pending, marks the run ended and closes the file. */
  close(): Promise<void> {
    return this.transport.close();
  }

  /** Sends the current batch to the writer. */
  flush(): void {
    this.transport.flush();
  }

  /** Before every batch: the counters of each session that changed since the last one. */
  private readonly pushProgress = (): void => {
    for (const state of this.dirty) {
      state.dirty = false;
      this.transport.sessionProgress(
        state.sid,
        state.upReceived,
        state.upSent,
        state.downReceived,
        state.downSent,
        state.captured,
        state.truncated,
        state.uncaptured,
      );
    }
    this.dirty.clear();
  };

  // --- Internals ---------------------------------------------------------------------------------

  private live(engineId: number): SessionState | undefined {
    if (!this.transport.capturing) return undefined;
    return this.sessions.get(engineId);
  }

  private touch(state: SessionState): void {
    if (!state.dirty) {
      state.dirty = true;
      this.dirty.add(state);
    }
  }

  private event(sid: number | null, at: number, kind: string, e: { addon?: string; hook?: string; location?: string; code?: string; message: string }): void {
    const { addon = null, hook = null, location = null, code = null, message } = e;
    this.transport.push({ op: "event", sid, at, kind, addon, hook, location, code, message });
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
    if (stored !== undefined) this.transport.push({ op: "detected", sid: state.sid, ...stored });
  }

  /** How many of `length` payload bytes the session's capture limit keeps (the transport copies them). */
  private keep(state: SessionState, wanted: number): number {
    const room = this.limit - state.captured;
    let length = wanted;
    if (length > room) {
      length = Math.max(0, room);
      if (!state.truncated) {
        state.truncated = true;
        const message = `payload beyond ${this.limit} bytes is not kept (--capture-limit); byte counts stay exact`;
        this.event(state.sid, this.now(), "capture", { code: "truncated", message });
      }
    }
    state.captured += length;
    return length;
  }

  /** Capture stopped on a write error (the transport dropped what was pending): forget every session. */
  private readonly onFailed = (error: CaptureError): void => {
    this.sessions.clear();
    this.dirty.clear();
    this.options.failed?.(error);
  };
}
