/**
 * Server replay, the offline mock: answers clients from recorded sessions instead of dialling.
 *
 * It is a HookRunner around the proxy's own (the addons' dispatcher, or allow-all), so addons
 * keep working on replayed traffic:
 * - CONNECT to a recorded destination (host as the client wrote it, and port): the addons'
 *   onRequest is asked first, with `session.replay` already set; a deny or a serve of theirs
 *   wins; otherwise the session is served (`{ serve: true }`: success reply, nothing dialled).
 *   When several recordings share the destination, the client's first bytes choose: the same
 *   bytes, else the most alike (`likeness`), else the oldest. A recording whose server spoke
 *   first is chosen at the reply and its greeting follows the success reply.
 * - Turn by turn: once the client has sent as many bytes as the recorded client turn, or sent
 *   fewer and then nothing for `quietMs`, the server's next recorded turn is written. After the
 *   last recorded turn the session is closed (FIN): the recording has nothing more to say.
 * - Bounded per served client, whatever the recording's size: the recording is read forward
 *   through a RecordingCursor (recordings.ts: pages of ~1 MiB, client turns as lengths only) and
 *   a server turn is written a chunk at a time, waiting for `session.writable("down")` (the
 *   client's drain and the capture) between chunks, so a 1 GB answer holds a page and the
 *   socket's buffer, not 1 GB. Client bytes that arrive while an answer is still going out count
 *   toward the next client turn.
 * - UDP ASSOCIATE is allowed; a datagram to a recorded destination is not sent anywhere and is
 *   answered with the recorded reply datagram(s), from the peer that sent them.
 * - A miss (no recording, or all used without `reuse`): denied with 0x02 (not allowed by
 *   ruleset) / the datagram dropped, so an offline test stays offline; or, with miss
 *   "forward", handled as without server replay. BIND is a miss.
 *
 * Addons see the client's bytes (onData "up") and may change or drop them before they are
 * matched; the recorded answer is injected, so onData does not see it, and the capture stores it
 * as injected bytes.
 */
import type {
  AuthAttempt,
  ConnectionInfo,
  DataChunk,
  DataVerdict,
  DatagramInfo,
  DatagramVerdict,
  EngineObserver,
  HookRunner,
  MaybePromise,
  ReplyChange,
  ReplyInfo,
  RequestDecision,
  RequestInfo,
  SessionClosedFact,
  SessionHandle,
  SessionId,
  TlsHelloDecision,
  TlsHelloInfo,
} from "../engine/index.js";
import { thenMaybe } from "../lang/maybe-then.js";
import { PAGE_BYTES, mostAlike, type RecordingCursor, type Recordings, type TcpRecording } from "./recordings.js";

export interface ServerReplayOptions {
  /** What to do when nothing recorded matches: deny (0x02 / drop) or handle it as usual. */
  readonly miss: "deny" | "forward";
  /** Let a recording serve more than one session (default: each serves once). */
  readonly reuse: boolean;
  /** How long a client that sent less than the recorded turn may pause before it is answered (default 200 ms). */
  readonly quietMs?: number;
  /**
   * A session will be answered from a recording (`of`, its id in the capture file), or no longer
   * (`of` undefined): for `session.replay` of addons (the proxy marks its ReplayMarks). Told at the
   * request, and again when the client's first bytes choose another one of several recordings.
   */
  readonly serving?: (id: SessionId, of: number | undefined) => void;
  /** A session was answered from recorded session `of` (for the capture's `served_from`). */
  readonly served?: (id: SessionId, of: number) => void;
  /** A miss, described for a log line. */
  readonly missed?: (id: SessionId, what: string) => void;
}

/** SOCKS5 REP 0x02: connection not allowed by ruleset. */
const NOT_ALLOWED = 2;
const NO_ANSWER: DataVerdict = undefined;

interface Serving {
  readonly handle: SessionHandle;
  candidates: TcpRecording[];
  chosen?: { readonly recording: TcpRecording; readonly cursor: RecordingCursor };
  /** Client bytes received toward the cursor's current client piece. */
  got: number;
  /** A server turn is being written (from the cursor, paced); client bytes wait in `ahead`. */
  answering: boolean;
  /** Client bytes received while answering: they count toward the next client turn. */
  ahead: number;
  quiet?: NodeJS.Timeout;
  done: boolean;
}

export class ServerReplay implements HookRunner {
  private readonly sessions = new Map<SessionId, Serving>();
  /** UDP associations already linked to a recorded one. */
  private readonly linked = new Set<SessionId>();
  private readonly quietMs: number;

  constructor(
    private readonly recordings: Recordings,
    private readonly inner: HookRunner,
    private readonly options: ServerReplayOptions,
  ) {
    this.quietMs = options.quietMs ?? 200;
    this.answersDatagrams = recordings.counts.udp > 0 || options.miss === "deny";
  }

  /** Whether datagrams need this runner: some are recorded, or misses are dropped. */
  private readonly answersDatagrams: boolean;

  /** Forgets sessions as they close; add it to the engine's observers. */
  readonly observer: EngineObserver = {
    sessionOpened() {},
    authenticated() {},
    requested() {},
    replied() {},
    anomaly() {},
    sessionClosed: (fact: SessionClosedFact) => {
      const serving = this.sessions.get(fact.id);
      if (serving !== undefined) clearTimeout(serving.quiet);
      this.sessions.delete(fact.id);
      this.linked.delete(fact.id);
    },
  };

  open(conn: ConnectionInfo, handle: SessionHandle) {
    return this.inner.open(conn, handle);
  }

  auth(attempt: AuthAttempt, conn: ConnectionInfo, handle: SessionHandle) {
    return this.inner.auth(attempt, conn, handle);
  }

  /**
   * With `run --tls`: a served tunnel that begins with a ClientHello is intercepted when one of its
   * recordings was (they hold plaintext), answering in the protocol (ALPN) this client prefers
   * among those recorded, from recordings in that protocol (an h2 recording is served as h2); a
   * tunnel whose recordings passed
   * through is passed through (they hold ciphertext). Tunnels that go out (misses with
   * --replay-miss forward) keep the addons' decision.
   */
  tlsClientHello(hello: TlsHelloInfo, handle: SessionHandle): MaybePromise<TlsHelloDecision> {
    const serving = this.sessions.get(hello.id);
    if (serving === undefined) return this.inner.tlsClientHello?.(hello, handle);
    const usable = serving.candidates.filter((c) => this.options.reuse || !c.used);
    const facts = usable.map((c) => ({ recording: c, tls: this.recordings.tlsOf(c) }));
    const intercepted = facts.filter((f) => f.tls?.intercepted === true);
    if (intercepted.length === 0) return facts.some((f) => f.tls !== undefined) ? { passthrough: true } : undefined;
    // Only plaintext recordings can answer now, those for this SNI when there are any. The
    // protocol is fixed before the client says what it wants: the one it prefers among those
    // recorded, and only recordings in that protocol answer.
    const forSni = intercepted.filter((f) => f.tls?.sni === hello.sni);
    const usableNow = forSni.length > 0 ? forSni : intercepted;
    for (const protocol of hello.alpn) {
      const inProtocol = usableNow.filter((f) => f.tls?.alpn === protocol);
      if (inProtocol.length === 0) continue;
      serving.candidates = inProtocol.map((f) => f.recording);
      this.greetInside(hello.id, serving);
      return { intercept: true, alpn: protocol };
    }
    serving.candidates = usableNow.map((f) => f.recording);
    this.greetInside(hello.id, serving);
    return { intercept: true };
  }

  /**
   * A recording whose server spoke first inside TLS (an h2 server's SETTINGS): its greeting is
   * written now, and the engine sends it once the client's handshake is done.
   */
  private greetInside(id: SessionId, serving: Serving): void {
    if (serving.chosen !== undefined) return;
    const first = serving.candidates.find((c) => (this.options.reuse || !c.used) && this.recordings.firstTurn(c)?.direction === "down");
    if (first === undefined) return;
    this.choose(id, serving, first);
    this.answer(id, serving);
  }

  request(request: RequestInfo, handle: SessionHandle): MaybePromise<RequestDecision> {
    const { destination } = request;
    const where = `${destination.host}:${destination.port}`;
    if (request.command === "udp") return this.inner.request(request, handle);
    const candidates = request.command === "connect" ? this.recordings.tcpFor(destination.host, destination.port, this.options.reuse) : [];
    if (candidates.length === 0) {
      const what =
        request.command === "bind" ? `BIND ${where}: server replay does not answer BIND` : `no recording of ${where}${this.options.reuse ? "" : " left"}`;
      return thenMaybe(this.inner.request(request, handle), (decision) => this.miss(request.id, what, decision));
    }
    this.options.serving?.(request.id, candidates[0]!.id);
    return thenMaybe(this.inner.request(request, handle), (decision): RequestDecision => {
      if (decision !== undefined && ("deny" in decision || "serve" in decision)) {
        this.options.serving?.(request.id, undefined);
        return decision;
      }
      this.sessions.set(request.id, { handle, candidates, got: 0, answering: false, ahead: 0, done: false });
      return { serve: true };
    });
  }

  reply(reply: ReplyInfo, handle: SessionHandle): MaybePromise<ReplyChange> {
    const serving = this.sessions.get(reply.id);
    if (serving === undefined) return this.inner.reply(reply, handle);
    return thenMaybe(this.inner.reply(reply, handle), (change) => {
      if ((change?.rep ?? reply.rep) !== 0) {
        // An addon turned the success into a failure: nothing is served.
        this.sessions.delete(reply.id);
        this.options.serving?.(reply.id, undefined);
        return change;
      }
      // A server that spoke first: its greeting follows the success reply.
      // (An intercepted TLS recording greets only inside TLS: see tlsClientHello.)
      const first = serving.candidates.find(
        (c) => (this.options.reuse || !c.used) && this.recordings.tlsOf(c)?.intercepted !== true && this.recordings.firstTurn(c)?.direction === "down",
      );
      if (first !== undefined) {
        this.choose(reply.id, serving, first);
        // After the reply has gone out and the relay has started (its pacing applies).
        this.answer(reply.id, serving);
      }
      return change;
    });
  }

  wantsData(): boolean {
    return this.inner.wantsData();
  }

  data(chunk: DataChunk, handle: SessionHandle): MaybePromise<DataVerdict> {
    const serving = this.sessions.get(chunk.id);
    if (serving === undefined || chunk.direction !== "up") return this.inner.data(chunk, handle);
    const ask = this.inner.wantsData() ? this.inner.data(chunk, handle) : NO_ANSWER;
    return thenMaybe(ask, (verdict) => {
      if (verdict === undefined) this.clientSent(chunk.id, serving, chunk.data);
      else if ("replace" in verdict) this.clientSent(chunk.id, serving, verdict.replace);
      return verdict;
    });
  }

  wantsDatagrams(): boolean {
    return this.answersDatagrams || this.inner.wantsDatagrams();
  }

  datagram(datagram: DatagramInfo, handle: SessionHandle): MaybePromise<DatagramVerdict> {
    const ask = this.inner.wantsDatagrams() ? this.inner.datagram(datagram, handle) : undefined;
    if (datagram.direction !== "up") return ask;
    return thenMaybe(ask, (verdict): DatagramVerdict => {
      if (verdict !== undefined && ("drop" in verdict || "redirect" in verdict)) return verdict;
      const data = verdict === undefined ? datagram.data : verdict.replace;
      const { host, port } = datagram.peer;
      const exchange = this.recordings.udpFor(host, port, data, this.options.reuse);
      if (exchange === undefined) {
        const what = `no recorded datagram to ${host}:${port}${this.options.reuse ? "" : " left"}`;
        if (this.options.miss === "forward") return verdict;
        this.options.missed?.(datagram.id, `${what}: dropped (--replay-miss forward sends it)`);
        return { drop: true };
      }
      exchange.used = true;
      if (!this.linked.has(datagram.id)) {
        this.linked.add(datagram.id);
        this.options.serving?.(datagram.id, exchange.session);
        this.options.served?.(datagram.id, exchange.session);
      }
      // After the verdict (also an addon's async one), so the capture has the question first.
      setImmediate(() => {
        for (const reply of exchange.replies) handle.injectDatagram(reply.peer, reply.data);
      });
      // Answered here: nothing goes out.
      return { drop: true };
    });
  }

  // --- TCP serving ---------------------------------------------------------------------------

  private miss(id: SessionId, what: string, decision: RequestDecision): RequestDecision {
    if (this.options.miss === "forward" || (decision !== undefined && ("deny" in decision || "serve" in decision))) return decision;
    this.options.missed?.(id, `${what}: denied with 0x02 (--replay-miss forward dials out instead)`);
    return { deny: NOT_ALLOWED };
  }

  private choose(id: SessionId, serving: Serving, recording: TcpRecording): void {
    recording.used = true;
    serving.chosen = { recording, cursor: this.recordings.cursor(recording) };
    this.options.serving?.(id, recording.id);
    this.options.served?.(id, recording.id);
  }

  private clientSent(id: SessionId, serving: Serving, data: Uint8Array): void {
    if (serving.done || data.length === 0) return;
    if (serving.chosen === undefined) {
      // The client's first bytes choose among the recordings of this destination.
      const open = serving.candidates.filter((c) => (this.options.reuse || !c.used) && this.recordings.firstTurn(c)?.direction === "up");
      const recording = mostAlike(open, data, (c) => this.recordings.firstTurn(c)!.data);
      if (recording === undefined) {
        const left = serving.candidates.some((c) => this.options.reuse || !c.used);
        this.options.missed?.(
          id,
          left
            ? "no recording of this destination starts with the client speaking: closed"
            : "every recording of this destination was used by another session meanwhile: closed",
        );
        serving.done = true;
        serving.handle.close("graceful");
        return;
      }
      this.choose(id, serving, recording);
    }
    if (serving.answering) {
      serving.ahead += data.length;
      return;
    }
    this.count(id, serving, data.length);
  }

  /**
   * Counts `n` client bytes against the recorded client turn (bytes past its end, in the same
   * read, are not counted). A complete turn is answered; a partial one after `quietMs` of silence.
   */
  private count(id: SessionId, serving: Serving, n: number): void {
    const cursor = serving.chosen!.cursor;
    let piece = cursor.peek();
    if (piece === undefined || piece.direction !== "up") return;
    clearTimeout(serving.quiet);
    serving.quiet = undefined;
    while (n > 0 && piece !== undefined && piece.direction === "up") {
      const take = Math.min(n, piece.size - serving.got);
      serving.got += take;
      n -= take;
      if (serving.got < piece.size) break;
      cursor.next();
      serving.got = 0;
      piece = cursor.peek();
    }
    if (piece === undefined || piece.direction === "down") return this.answer(id, serving);
    serving.quiet = setTimeout(() => this.endClientTurn(id, serving), this.quietMs);
  }

  /** The client paused within its turn: the rest of the recorded turn is skipped, and answered. */
  private endClientTurn(id: SessionId, serving: Serving): void {
    serving.quiet = undefined;
    serving.got = 0;
    const cursor = serving.chosen!.cursor;
    for (let piece = cursor.peek(); piece !== undefined && piece.direction === "up"; piece = cursor.peek()) cursor.next();
    this.answer(id, serving);
  }

  /**
   * Writes the server's turn from the cursor, a chunk at a time, pacing on `writable("down")`;
   * then counts client bytes that came meanwhile, or closes (FIN) after the recording's end.
   * It starts on the next turn of the event loop: after the verdict on the client's chunk (an
   * addon's async one too), so the capture has the question before the answer, and after the
   * reply when the server spoke first (the relay is out by then).
   */
  private answer(id: SessionId, serving: Serving): void {
    serving.answering = true;
    setImmediate(() => void this.play(id, serving));
  }

  private async play(id: SessionId, serving: Serving): Promise<void> {
    const cursor = serving.chosen!.cursor;
    const { handle } = serving;
    let unpaced = 0;
    for (let piece = cursor.peek(); piece !== undefined && piece.direction === "down"; piece = cursor.peek()) {
      if (this.sessions.get(id) !== serving) return;
      cursor.next();
      handle.inject("down", piece.bytes);
      const writable = handle.writable?.("down");
      if (writable !== undefined) {
        await writable;
        unpaced = 0;
      } else if ((unpaced += piece.size) >= PAGE_BYTES) {
        // A handle without pacing: at least let the event loop run between pages.
        await new Promise<void>((resolve) => setImmediate(resolve));
        unpaced = 0;
      }
    }
    if (this.sessions.get(id) !== serving) return;
    serving.answering = false;
    if (cursor.peek() === undefined) {
      serving.done = true;
      handle.close("graceful");
      return;
    }
    const ahead = serving.ahead;
    serving.ahead = 0;
    if (ahead > 0) this.count(id, serving, ahead);
  }
}
