/**
 * Interactive intercept (issue 15) as a HookRunner around the proxy's own (the addons' dispatcher,
 * server replay, or allow-all): the inner runner answers first, so intercept sees what the addons
 * produced; then, when the queue's filter matches, the engine's hook call waits in the queue
 * (intercept-queue.ts) until a person answers. While it waits the engine reads nothing more from
 * that session's direction (ports.ts), so a held item holds only its own session and memory stays
 * bounded; every other session flows on.
 *
 * - request: a deny or a serve of the inner runner stands. Otherwise the request as it would be
 *   dialled (a redirect's host and port) is the subject of stage "request". resume keeps the
 *   inner decision, or with a host and/or port becomes a redirect there (a redirect replaces an
 *   addon's `{ upstream }`: the request then takes the engine's default route); deny answers
 *   with that code.
 * - data: the inner verdict first; a drop, close or reset stands. Bytes passed on (unchanged or
 *   an addon's replace; not an empty replace) are the subject of stage "up" or "down". resume
 *   with other bytes becomes `{ replace }` (the capture keeps received vs sent), drop/close/reset
 *   become those verdicts.
 * - datagram: likewise (stage "datagram"); the peer is where an "up" datagram goes after an
 *   addon's redirect. resume with bytes and/or a redirect ("up") become replace / redirect.
 * - Replayed sessions (the proxy's ReplayMarks: client or server replay) are never held.
 * - No hook timeout applies (that is the dispatcher's, around the addons). The engine's idle
 *   timeout does not close a TCP tunnel while a data hook is pending (tcp-relay.ts), nor a UDP
 *   association while datagrams wait for one (udp-association.ts).
 * - `wantsData()`/`wantsDatagrams()` are true while a filter is set (even switched off, so that
 *   switching on reaches sessions already relaying): their relays then take the per-chunk path.
 * - A person's change (edit, redirect, deny, drop, close, reset) is told to `events.edited`;
 *   a plain resume is not.
 *
 * Memory: the request of each live session (what chunks and datagrams are matched against),
 * forgotten when it closes: add `observer` to the engine's observers.
 */
import { isIP } from "node:net";
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
  SocksAddress,
  TlsHelloDecision,
  TlsHelloInfo,
} from "../engine/index.js";
import { noReplays, type ReplayLookup } from "../hooks/replay-marks.js";
import { formatEndpoint } from "../engine/index.js";
import { thenMaybe } from "../lang/maybe-then.js";
import type { InterceptQueue } from "./intercept-queue.js";
import type { ChunkAction, DatagramAction, InterceptEdit, RequestAction } from "./types.js";

export interface InterceptRunnerOptions {
  /** Which sessions are replays (never held); none by default. */
  readonly replays?: ReplayLookup;
  /** A person changed something (for the capture's events). A throw is ignored. */
  readonly events?: { edited(session: SessionId, what: InterceptEdit): void };
}

export class InterceptRunner implements HookRunner {
  /** Each live session's request after the addons' decision. */
  private readonly requests = new Map<SessionId, RequestInfo>();
  private readonly replays: ReplayLookup;

  constructor(
    private readonly inner: HookRunner,
    readonly queue: InterceptQueue,
    private readonly options: InterceptRunnerOptions = {},
  ) {
    this.replays = options.replays ?? noReplays;
  }

  /** Forgets sessions as they close and takes their held items out of the queue; add it to the engine's observers. */
  readonly observer: EngineObserver = {
    sessionOpened() {},
    authenticated() {},
    requested() {},
    replied() {},
    anomaly() {},
    sessionClosed: (fact: SessionClosedFact) => {
      this.requests.delete(fact.id);
      this.queue.ended(fact.id);
    },
  };

  open(conn: ConnectionInfo, handle: SessionHandle) {
    return this.inner.open(conn, handle);
  }

  auth(attempt: AuthAttempt, conn: ConnectionInfo, handle: SessionHandle) {
    return this.inner.auth(attempt, conn, handle);
  }

  reply(reply: ReplyInfo, handle: SessionHandle): MaybePromise<ReplyChange> {
    return this.inner.reply(reply, handle);
  }

  tlsClientHello(hello: TlsHelloInfo, handle: SessionHandle): MaybePromise<TlsHelloDecision> {
    return this.inner.tlsClientHello?.(hello, handle);
  }

  request(request: RequestInfo, handle: SessionHandle): MaybePromise<RequestDecision> {
    return thenMaybe(this.inner.request(request, handle), (decision): MaybePromise<RequestDecision> => {
      if (decision !== undefined && ("deny" in decision || "serve" in decision)) return decision;
      const effective = decision !== undefined && "redirect" in decision ? redirected(request, decision.redirect) : request;
      this.requests.set(request.id, effective);
      if (!this.holds(effective) || !this.queue.matches({ stage: "request", request: effective })) return decision;
      return this.queue.hold({ kind: "request", session: request.id, request: effective }).then((action) => this.requestDecision(effective, decision, action));
    });
  }

  wantsData(): boolean {
    return this.queue.configured || this.inner.wantsData();
  }

  data(chunk: DataChunk, handle: SessionHandle): MaybePromise<DataVerdict> {
    const ask = this.inner.wantsData() ? this.inner.data(chunk, handle) : undefined;
    return thenMaybe(ask, (verdict): MaybePromise<DataVerdict> => {
      if (verdict !== undefined && !("replace" in verdict)) return verdict;
      const request = this.requests.get(chunk.id);
      if (request === undefined || !this.holds(request)) return verdict;
      const data = verdict === undefined ? chunk.data : asBuffer(verdict.replace);
      if (data.length === 0) return verdict;
      const { direction, seq } = chunk;
      if (!this.queue.matches({ stage: direction, request, direction, seq, data })) return verdict;
      return this.queue
        .hold({ kind: "chunk", session: chunk.id, request, direction, seq, data })
        .then((action) => this.dataVerdict(chunk, data, verdict, action));
    });
  }

  wantsDatagrams(): boolean {
    return this.queue.configured || this.inner.wantsDatagrams();
  }

  datagram(datagram: DatagramInfo, handle: SessionHandle): MaybePromise<DatagramVerdict> {
    const ask = this.inner.wantsDatagrams() ? this.inner.datagram(datagram, handle) : undefined;
    return thenMaybe(ask, (verdict): MaybePromise<DatagramVerdict> => {
      if (verdict !== undefined && "drop" in verdict) return verdict;
      const request = this.requests.get(datagram.id);
      if (request === undefined || !this.holds(request)) return verdict;
      const data = verdict?.replace === undefined ? datagram.data : asBuffer(verdict.replace);
      // The engine honours a redirect for "up" datagrams only.
      const peer = verdict !== undefined && "redirect" in verdict && datagram.direction === "up" ? toward(datagram.peer, verdict.redirect) : datagram.peer;
      const { direction, seq } = datagram;
      if (!this.queue.matches({ stage: "datagram", request, direction, seq, peer, data })) return verdict;
      return this.queue
        .hold({ kind: "datagram", session: datagram.id, request, direction, seq, peer, data })
        .then((action) => this.datagramVerdict(datagram, peer, data, verdict, action));
    });
  }

  // --- answers -------------------------------------------------------------------------------

  /** Whether the session may be held: never a replay (client or server). */
  private holds(request: RequestInfo): boolean {
    return this.replays.replayOf(request.id, request.client.port) === undefined;
  }

  private requestDecision(effective: RequestInfo, decision: RequestDecision, action: RequestAction): RequestDecision {
    const id = effective.id;
    if ("deny" in action) {
      this.edited(id, { stage: "request", action: "deny", detail: `request denied (${action.deny})` });
      return { deny: action.deny };
    }
    const { host, port } = effective.destination;
    const to = { host: action.host ?? host, port: action.port ?? port };
    if (to.host === host && to.port === port) return decision;
    this.edited(id, { stage: "request", action: "redirect", detail: `request edited: ${formatEndpoint({ host, port })} → ${formatEndpoint(to)}` });
    return { redirect: to };
  }

  private dataVerdict(chunk: DataChunk, held: Buffer, verdict: DataVerdict, action: ChunkAction): DataVerdict {
    const what = `${chunk.direction} chunk ${chunk.seq}`;
    const edit = (a: InterceptEdit["action"], detail: string) => this.edited(chunk.id, { stage: chunk.direction, seq: chunk.seq, action: a, detail });
    if ("drop" in action) {
      edit("drop", `${what} dropped (${held.length} bytes)`);
      return { drop: true };
    }
    if ("close" in action) {
      edit("close", `${what} held, session closed (FIN)`);
      return { close: true };
    }
    if ("reset" in action) {
      edit("reset", `${what} held, session reset (RST)`);
      return { reset: true };
    }
    if (action.data === undefined || held.equals(action.data)) return verdict;
    edit("edit", `${what} edited: ${held.length} → ${action.data.length} bytes`);
    return { replace: action.data };
  }

  private datagramVerdict(datagram: DatagramInfo, peer: SocksAddress, held: Buffer, verdict: DatagramVerdict, action: DatagramAction): DatagramVerdict {
    const { id, direction, seq } = datagram;
    const what = `${direction} datagram ${seq}`;
    const edit = (a: InterceptEdit["action"], detail: string) => this.edited(id, { stage: "datagram", seq, action: a, detail });
    if ("drop" in action) {
      edit("drop", `${what} dropped (${held.length} bytes)`);
      return { drop: true };
    }
    const bytesChanged = action.data !== undefined && !held.equals(action.data);
    const to = action.redirect === undefined ? peer : toward(peer, action.redirect);
    const moved = to.host !== peer.host || to.port !== peer.port;
    if (!bytesChanged && !moved) return verdict;
    if (bytesChanged) edit("edit", `${what} edited: ${held.length} → ${action.data!.length} bytes`);
    if (moved) edit("redirect", `${what} redirected: ${formatEndpoint(peer)} → ${formatEndpoint(to)}`);
    const data: Uint8Array = bytesChanged ? action.data! : held;
    const wasMoved = verdict !== undefined && "redirect" in verdict;
    if (direction === "up" && (moved || wasMoved)) return { redirect: { host: to.host, port: to.port }, replace: data };
    return { replace: data };
  }

  private edited(id: SessionId, what: InterceptEdit): void {
    try {
      this.options.events?.edited(id, what);
    } catch {
      // The capture's event is a record of the edit, not part of it: the traffic goes on.
    }
  }
}

/** The request as it would be dialled after a redirect. */
function redirected(request: RequestInfo, redirect: { readonly host?: string; readonly port?: number }): RequestInfo {
  return { ...request, destination: toward(request.destination, redirect) };
}

function toward(address: SocksAddress, redirect: { readonly host?: string; readonly port?: number }): SocksAddress {
  const host = redirect.host ?? address.host;
  const family = isIP(host);
  return { type: family === 4 ? "ipv4" : family === 6 ? "ipv6" : "domain", host, port: redirect.port ?? address.port };
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
