/**
 * Drives one client connection: feeds socket events to the session machine, interprets its
 * commands against real sockets and the hook runner, then hands both sockets to the relay.
 */
import type { Socket } from "node:net";
import type { Direction, Endpoint, SocksAddress } from "../types.js";
import type {
  AuthDecision,
  AuthFact,
  CloseReason,
  ConnectionInfo,
  ReplyChange,
  ReplyFact,
  ReplyInfo,
  RequestDecision,
  RequestInfo,
  SessionClosedFact,
  SessionHandle,
} from "../ports.js";
import { normalizeHost } from "../codec/address.js";
import { SessionMachine } from "../session/machine.js";
import type { SessionCommand } from "../session/commands.js";
import type { SessionEvent } from "../session/events.js";
import type { ProtocolError } from "../errors.js";
import { dial, type DialSuccess } from "./dialer.js";
import { associateThrough, dialChain, type ChainFailure } from "./chain-dialer.js";
import { canCarry, formatHop, formatRoute, type Route } from "../upstream.js";
import { bindPeerCheck, datagramCheck, decideWithRules, dialCheck } from "./destination-checks.js";
import { callHook } from "./call-hook.js";
import { TcpRelay, type RelayCounts, type RelayHost } from "./tcp-relay.js";
import { UdpAssociation } from "./udp-association.js";
import { BindListener, UpstreamBind, type BindEvents, type BindPeer } from "./bind-listener.js";
import { ServedRelay } from "./served-relay.js";
import { TlsGate } from "./tls-gate.js";
import type { TlsInterceptor } from "../tls-ports.js";
import { type SocketReader, discard } from "./socket-reader.js";
import type { EngineContext, EngineSession } from "./engine-context.js";
import type { Deadline } from "./deadline-queue.js";
import { assertNever } from "../../lang/assert-never.js";

/**
 * Client bytes the machine may hold while it waits (hooks, the dial) before reading pauses.
 * Reading is not paused below it: a pause/resume pair costs two epoll_ctl calls per session.
 */
const EARLY_DATA_MAX = 64 * 1024;

/** How long a client may keep its half of a failed session open after our reply and FIN. */
const LINGER_AFTER_FAILURE_MS = 2_000;

const UNSPECIFIED: Endpoint = { host: "0.0.0.0", port: 0 };

/** Idle time before the first TCP keepalive probe on a UDP ASSOCIATE control connection. */
const UDP_CONTROL_KEEPALIVE_MS = 30_000;

export class ClientSession implements SessionHandle, EngineSession, BindEvents {
  readonly id: number;
  /** `conn`, once read. */
  private info: ConnectionInfo | undefined;
  private machine: SessionMachine | undefined;
  private relay: TcpRelay | ServedRelay | TlsGate | undefined;
  /** Bytes hooks injected before the relay started. */
  private pendingInjects: { direction: Direction; data: Uint8Array }[] | undefined;
  private upstream: Socket | undefined;
  private upstreamReader: SocketReader | undefined;
  private cancelDial: (() => void) | undefined;
  private bind: BindListener | UpstreamBind | undefined;
  private udp: UdpAssociation | undefined;
  private handshakeTimer: Deadline | undefined;
  private user: string | undefined;
  private clientEnded = false;
  private finished = false;
  private closeReason: CloseReason | undefined;
  private closeErrno: string | undefined;
  private target: Endpoint | undefined;
  private remote: Endpoint | undefined;
  private attempts: readonly string[] | undefined;
  /** The upstream proxies this request goes through (chosen at the request); undefined or empty: direct. */
  private route: Route | undefined;
  /** Bytes the far end sent right after an upstream chain connected: the tunnel's first download. */
  private earlyDown: Buffer | undefined;
  /** The destination as the client asked for it (a served CONNECT's TLS leaf names it). */
  private requested: Endpoint | undefined;

  constructor(
    private readonly ctx: EngineContext,
    private readonly client: Socket,
    private readonly clientReader: SocketReader,
    /** The listener's address when it is a specific one (saves a getsockname per session). */
    private readonly listener?: Endpoint,
  ) {
    this.id = ctx.nextSessionId();
  }

  /**
   * Who connected where. Read from the socket on first use (a getpeername), which is at the start
   * when hooks or an observer are there to be told, else only if the request needs it (routes,
   * UDP, BIND): always while the client socket is open, and kept from then on.
   */
  get conn(): ConnectionInfo {
    const { client } = this;
    this.info ??= {
      id: this.id,
      client: { host: normalizeHost(client.remoteAddress ?? "?"), port: client.remotePort ?? 0 },
      local: this.listener ?? { host: normalizeHost(client.localAddress ?? "?"), port: client.localPort ?? 0 },
    };
    return this.info;
  }

  // --- SessionHandle ---------------------------------------------------------------------------

  get observer() {
    return this.ctx.observer;
  }

  get hooks() {
    return this.ctx.hooks;
  }

  get handle(): SessionHandle {
    return this;
  }

  inject(direction: Direction, data: Uint8Array): void {
    if (this.relay !== undefined) return this.relay.inject(direction, data);
    // Before the relay (from onRequest or onReply): sent right after a success reply, in order;
    // forgotten when the request fails.
    if (!this.finished && this.udp === undefined && data.length > 0) (this.pendingInjects ??= []).push({ direction, data: Uint8Array.from(data) });
  }

  /** Resolves once bytes injected toward `direction` may go on (its destination drained); undefined when they may now. */
  writable(direction: Direction): PromiseLike<void> | undefined {
    return this.relay?.writable(direction);
  }

  injectDatagram(peer: Endpoint, data: Uint8Array): void {
    this.udp?.inject(peer, data);
  }

  close(mode: "graceful" | "reset" = "graceful"): void {
    if (this.relay !== undefined) return this.relay.close(mode, "closed-by-hook");
    this.abort("closed-by-hook", mode === "reset");
  }

  // --- lifecycle -------------------------------------------------------------------------------

  start(): void {
    const { ctx, client } = this;
    if (ctx.observed) ctx.observer.sessionOpened({ ...this.conn, at: ctx.clock.now() });
    client.on("error", this.onClientError);
    client.on("close", this.onClientClose);
    client.on("end", this.onClientEnd);
    this.handshakeTimer = ctx.handshakeDeadlines.add(this.onHandshakeTimeout);
    if (!ctx.hooked) return this.admit();
    this.ask(
      "open",
      () => ctx.hooks.open(this.conn, this),
      (decision) => {
        if (decision?.reject) return this.abort("rejected", false);
        this.admit();
      },
    );
  }

  /** The open hook let the client in: the handshake starts. */
  private admit(): void {
    this.machine = new SessionMachine({ authRequired: this.ctx.options.authRequired });
    this.clientReader.sink = this.onClientView;
    // The socket was created paused; reading starts once the open hook let it in.
    this.client.resume();
  }

  /** Ends the session now (shutdown): no reply, sockets destroyed. */
  destroy(reason: CloseReason): void {
    if (this.relay !== undefined) return this.relay.destroy(reason);
    this.abort(reason, false);
  }

  /** Handshake bytes: copied out of the read buffer, since the machine keeps them. */
  private readonly onClientView = (view: Buffer): void => {
    this.feed({ type: "ClientBytesReceived", bytes: Buffer.from(view) });
  };

  private readonly onClientEnd = (): void => {
    this.clientEnded = true;
    // A FIN before the request is complete ends the session; after it, the FIN is passed on
    // to the target once the relay starts (e.g. `printf request+data | nc`).
    // A UDP association ends, normally, when its control connection does.
    if (this.machine?.phase.name === "udp-associated") this.abort("completed", false);
    else if (this.machine?.endsOnClientFin !== false) this.abort("client-closed", false);
  };

  private readonly onClientError = (err: NodeJS.ErrnoException): void => {
    this.closeErrno ??= err.code;
    this.abort(err.code === "ECONNRESET" ? "client-reset" : "client-error", false);
  };

  private readonly onClientClose = (): void => {
    this.closeReason ??= "client-closed";
    this.cancelDial?.();
    this.bind?.stopListening();
    if (this.upstream !== undefined && !this.upstream.destroyed) this.upstream.destroy();
    this.finish(this.closeReason, this.closeErrno, undefined);
  };

  private readonly onHandshakeTimeout = (): void => {
    this.ctx.observer.anomaly({
      id: this.id,
      at: this.ctx.clock.now(),
      code: "handshake-timeout",
      detail: `no complete request after ${this.ctx.options.handshakeTimeoutMs} ms`,
    });
    this.abort("handshake-timeout", false);
  };

  private feed(event: SessionEvent): void {
    const machine = this.machine;
    if (machine === undefined || this.finished) return;
    this.run(machine.handle(event));
  }

  /** Interprets commands in order; an Ask* command feeds its answer back as an event. */
  private run(commands: SessionCommand[]): void {
    const machine = this.machine!;
    for (const command of commands) {
      if (this.finished) return;
      this.execute(command, machine);
    }
    if (this.handshakeTimer !== undefined && !machine.readingHandshake) {
      this.handshakeTimer.cancel();
      this.handshakeTimer = undefined;
    }
    if (machine.phase.name === "bind-waiting" && !this.finished) this.bind?.awaitPeer();
    // Read client bytes only while the machine wants them (backpressure during hooks/dials).
    // A closed machine has handed the socket to endClient, which keeps reading to see the FIN.
    if (this.relay === undefined && !this.finished && machine.phase.name !== "closed") {
      if (machine.wantsClientBytes || machine.bufferedBytes <= EARLY_DATA_MAX) this.client.resume();
      else this.client.pause();
    }
  }

  private execute(command: SessionCommand, machine: SessionMachine): void {
    const { ctx } = this;
    switch (command.type) {
      case "SendToClient":
        this.client.write(command.bytes);
        return;
      case "ReportAnomaly":
        ctx.observer.anomaly({ id: this.id, at: ctx.clock.now(), code: command.code, detail: command.detail });
        return;
      case "ReportAuth":
        if (ctx.observed)
          ctx.observer.authenticated({ id: this.id, version: machine.version ?? 5, offered: command.offered, method: command.method, accepted: false });
        return;
      case "AskAuth": {
        const { attempt } = command;
        const user = attempt.method === "userpass" ? attempt.user : attempt.method === "socks4" ? attempt.userid : undefined;
        if (user !== undefined && user.length > 0) this.user = user.toString("latin1");
        if (!ctx.hooked) return this.authDecided(command, undefined);
        this.ask(
          "auth",
          () => ctx.hooks.auth(attempt, this.conn, this),
          (decision) => this.authDecided(command, decision),
        );
        return;
      }
      case "AskRequest": {
        this.requested = { host: command.request.destination.host, port: command.request.destination.port };
        // Without hooks, observers or routes, nobody reads the request's payload: none is built.
        if (!ctx.hooked && !ctx.observed && ctx.route === undefined)
          return this.feed({ type: "RequestDecided", decision: decideWithRules(ctx, this, command.request, undefined) });
        const request: Writable<RequestInfo> = { id: this.id, client: this.conn.client, ...command.request };
        if (this.user !== undefined) request.user = this.user;
        if (ctx.observed) ctx.observer.requested({ ...request, at: ctx.clock.now() });
        if (!ctx.hooked) return this.feed({ type: "RequestDecided", decision: this.decide(request, undefined) });
        this.ask(
          "request",
          () => ctx.hooks.request(request, this),
          (decision) => this.feed({ type: "RequestDecided", decision: this.decide(request, decision) }),
        );
        return;
      }
      case "OpenUpstream": {
        this.target = command.target;
        const route = this.route;
        const callback = (failure: ChainFailure | undefined, success?: DialSuccess & { readonly early?: Buffer }): void => {
          this.cancelDial = undefined;
          if (this.finished) {
            success?.socket.destroy();
            return;
          }
          if (failure !== undefined) {
            this.attempts = failure.attempts;
            if (failure.authFailedHop !== undefined) this.anomaly("upstream-auth-failed", failure.attempts.at(-1) ?? `hop ${failure.authFailedHop}`);
            return this.feed({
              type: "UpstreamFailed",
              error: { code: failure.code, message: failure.attempts.join("; ") },
              ...(failure.errno === undefined ? {} : { errno: failure.errno }),
            });
          }
          this.upstream = success!.socket;
          this.upstreamReader = success!.reader;
          this.remote = success!.remote;
          if (success!.early !== undefined && success!.early.length > 0) this.earlyDown = success!.early;
          if (success!.attempts.length > 1) this.attempts = success!.attempts;
          // Until the relay takes over, an upstream error only has to be noticed.
          this.upstream.on("error", noop);
          // Through upstreams, the bound address is what the last hop reported.
          this.feed({ type: "UpstreamConnected", bound: success!.bound });
        };
        // The rules check each address dialled directly; through upstreams the name was checked at the request.
        const timeoutMs = ctx.options.connectTimeoutMs;
        this.cancelDial =
          route === undefined || route.length === 0
            ? dial(
                command.target,
                { timeoutMs, lookup: ctx.lookup, clock: ctx.clock, deadlines: ctx.connectDeadlines, check: dialCheck(ctx, this, command.target) },
                callback,
              )
            : dialChain(route, command.target, { timeoutMs, lookup: ctx.lookup, clock: ctx.clock }, callback);
        return;
      }
      case "OpenBind": {
        const route = this.route;
        if (route !== undefined && route.length > 0) {
          // The last hop listens; the request's DST tells it which peer to expect.
          const options = { timeoutMs: ctx.options.connectTimeoutMs, bindTimeoutMs: ctx.options.bindTimeoutMs, lookup: ctx.lookup, clock: ctx.clock };
          this.bind = new UpstreamBind(route, this.requested ?? UNSPECIFIED, options, this, bindPeerCheck(ctx, this));
        } else {
          this.bind = new BindListener(this.conn.local.host, ctx.options.bindTimeoutMs, this, ctx.clock, bindPeerCheck(ctx, this));
        }
        return this.bind.open();
      }
      case "OpenUdpRelay":
        return this.openUdpRelay(command.hint);
      case "StartUdpRelay":
        // The association lives as long as this connection; keepalive notices a vanished client.
        this.client.setKeepAlive(true, UDP_CONTROL_KEEPALIVE_MS);
        return;
      case "AskReply": {
        const { rep, bound, code, errno } = command;
        const version = machine.version ?? 5;
        // Nobody to ask or tell: the reply goes as the machine chose it.
        if (!ctx.hooked && !ctx.observed) return this.replyDecided(rep, bound);
        const info: Writable<ReplyInfo> = { id: this.id, version, command: machine.command ?? "connect", stage: command.stage, rep, bound };
        if (code !== undefined) info.code = code;
        if (errno !== undefined) info.errno = errno;
        const decided = (change: ReplyChange): void => {
          const finalRep = change?.rep ?? rep;
          // A failure carries no address unless the hook gave one.
          const finalBound = change?.bound ?? (finalRep !== 0 && rep === 0 ? UNSPECIFIED : bound);
          if (ctx.observed) {
            // One object, optional fields absent rather than undefined (no spread of temporaries per session).
            const fact: Writable<ReplyFact> = { ...info, rep: finalRep, bound: finalBound, at: ctx.clock.now() };
            if (this.target !== undefined) fact.target = this.target;
            if (this.remote !== undefined) fact.remote = this.remote;
            if (this.attempts !== undefined) fact.attempts = this.attempts;
            if (this.route !== undefined && this.route.length > 0) fact.route = this.route.map(formatHop);
            ctx.observer.replied(fact);
          }
          this.replyDecided(finalRep, finalBound);
        };
        if (!ctx.hooked) return decided(undefined);
        this.ask<ReplyChange>("reply", () => ctx.hooks.reply(info, this), decided);
        return;
      }
      case "StartRelay":
        return this.startRelay(command.early);
      case "CloseClient":
        this.closeReason ??= command.reason;
        if (command.detail !== undefined) ctx.logger.log("debug", `session ${this.id}: ${command.detail}`);
        this.endClient();
        return;
      default:
        assertNever(command, "command");
    }
  }

  /** The auth step's decision (undefined: no hook had an opinion), reported and fed to the machine. */
  private authDecided(command: Extract<SessionCommand, { type: "AskAuth" }>, decision: AuthDecision): void {
    const { ctx } = this;
    const { attempt } = command;
    // An addon narrows who gets in, never widens it: `{ reject }` refuses, otherwise the
    // configured credentials decide (without --auth they let everyone in, so `{ accept }` does too).
    const accepted = (decision === undefined || "accept" in decision) && ctx.checkCredentials(attempt);
    if (ctx.observed) {
      const fact: Writable<AuthFact> = { id: this.id, version: command.version, offered: attempt.method === "socks4" ? [] : attempt.offered, accepted };
      if (command.method !== undefined) fact.method = command.method;
      if (this.user !== undefined) fact.user = this.user;
      ctx.observer.authenticated(fact);
    }
    this.feed({ type: "AuthDecided", accepted });
  }

  /** The reply to send, after the reply hook: a failure drops a connected upstream. */
  private replyDecided(rep: number, bound: Endpoint): void {
    if (rep !== 0 && this.upstream !== undefined) this.upstream.destroy();
    this.feed({ type: "ReplyDecided", rep, bound });
  }

  /**
   * Calls a hook, isolating the engine from a runner that throws or rejects, and continues
   * synchronously when the answer is synchronous (the fast path) or when the promise settles.
   */
  private ask<T>(hook: string, call: () => T | PromiseLike<T>, then: (value: T | undefined) => void): void {
    const pending = callHook(
      call,
      (err) => this.hookFailed(hook, err),
      (value) => {
        if (!this.finished) then(value);
      },
    );
    if (pending) this.client.pause();
  }

  // --- BindEvents (the BIND listener opened by OpenBind) ---------------------------------------

  bindListening(bound: Endpoint): void {
    this.feed({ type: "BindListening", bound });
  }

  bindFailed(error: ProtocolError, errno: string | undefined, chain?: ChainFailure): void {
    if (chain !== undefined) this.chainFailed(chain);
    this.feed({ type: "BindFailed", error, ...(errno === undefined ? {} : { errno }) });
  }

  /** What a failed chain (BIND or UDP through upstreams) leaves on the reply fact and as events, as for CONNECT. */
  private chainFailed(failure: ChainFailure): void {
    this.attempts = failure.attempts;
    if (failure.authFailedHop !== undefined) this.anomaly("upstream-auth-failed", failure.attempts.at(-1) ?? `hop ${failure.authFailedHop}`);
  }

  /** The peer becomes the upstream; one that comes when the session no longer waits for it is dropped. */
  bindPeerConnected(peer: BindPeer): void {
    if (this.finished || this.machine?.phase.name !== "bind-waiting") return void peer.socket.destroy();
    this.upstream = peer.socket;
    this.upstreamReader = peer.reader;
    this.remote = peer.remote;
    // Through upstreams: what the peer sent with the last hop's second reply is the tunnel's first download.
    if (peer.early !== undefined) this.earlyDown = peer.early;
    // As for a dialled upstream: until the relay takes over, an error only has to be noticed.
    this.upstream.on("error", noop);
    this.feed({ type: "BindPeerConnected", peer: peer.remote });
  }

  private openUdpRelay(hint: SocksAddress): void {
    const { ctx } = this;
    if (!ctx.udpAssociationOpened()) {
      this.anomaly("udp-association-limit", `${ctx.options.udp.maxAssociations} UDP associations open`);
      return this.feed({ type: "UdpRelayFailed", error: { code: "GENERAL_FAILURE", message: "UDP association limit reached" } });
    }
    const udp = new UdpAssociation(this, this.conn.client.host, this.conn.local.host, hint, ctx.options.udp, ctx.lookup, ctx.clock, datagramCheck(ctx));
    this.udp = udp;
    const route = this.route;
    if (route === undefined || route.length === 0) return this.openAssociation(udp);
    // Through a SOCKS5 upstream (canCarry allowed one hop): its association first, so the client's
    // success reply means datagrams can go through.
    const options = { timeoutMs: ctx.options.connectTimeoutMs, lookup: ctx.lookup, clock: ctx.clock };
    this.cancelDial = associateThrough(route, options, (failure, success) => {
      this.cancelDial = undefined;
      // Cancelled by the session ending (closeReason is set first): nothing to reply.
      if (this.finished || this.closeReason !== undefined) return void success?.socket.destroy();
      if (failure !== undefined) {
        this.chainFailed(failure);
        return this.feed({
          type: "UdpRelayFailed",
          error: { code: failure.code, message: failure.attempts.join("; ") },
          ...(failure.errno === undefined ? {} : { errno: failure.errno }),
        });
      }
      const { socket, remote, bound } = success!;
      this.remote = remote;
      socket.setKeepAlive(true, UDP_CONTROL_KEEPALIVE_MS);
      udp.throughUpstream({ relay: bound, sendsNames: route[0]!.scheme === "socks5h", control: socket, label: `hop 1 ${formatHop(route[0]!)}` });
      this.openAssociation(udp);
    });
  }

  /** Binds the association's sockets and tells the machine. */
  private openAssociation(udp: UdpAssociation): void {
    udp.open((err, bound) => {
      if (this.finished) return;
      if (err !== undefined) {
        return this.feed({
          type: "UdpRelayFailed",
          error: { code: "GENERAL_FAILURE", message: `UDP bind on ${this.conn.local.host}: ${err.message}` },
          ...(err.code === undefined ? {} : { errno: err.code }),
        });
      }
      this.feed({ type: "UdpRelayReady", bound: bound! });
    });
  }

  anomaly(code: string, detail: string): void {
    this.ctx.observer.anomaly({ id: this.id, at: this.ctx.clock.now(), code, detail });
  }

  udpEnded(reason: "idle-timeout" | "completed" | "target-reset" | "target-error", errno?: string): void {
    this.closeErrno ??= errno;
    this.abort(reason, false);
  }

  hookFailed(hook: string, err: unknown): void {
    this.ctx.logger.log("error", `hook runner failed in ${hook} for session ${this.id}: ${err instanceof Error ? err.message : String(err)}`);
  }

  private startRelay(early: Buffer): void {
    const { ctx, client } = this;
    this.clientReader.sink = discard;
    client.removeListener("end", this.onClientEnd);
    client.removeListener("error", this.onClientError);
    client.removeListener("close", this.onClientClose);
    const served = this.machine?.served === true;
    const connect = this.machine?.command === "connect";
    const { target, remote, requested } = this;
    this.machine = undefined;
    // What the reply needed is reported; a long-lived tunnel need not keep it.
    this.target = this.remote = this.attempts = this.requested = undefined;
    const tls = ctx.tls;
    if (served && tls !== undefined && connect && requested !== undefined) {
      // Served by a hook (server replay) with interception on: the gate may terminate the client's TLS.
      this.relay = this.tlsGate(tls, requested, requested, undefined, undefined);
    } else if (served) {
      // A hook serves this CONNECT itself: no upstream.
      this.relay = new ServedRelay(this, client, this.clientReader, ctx.idleSweeper);
    } else {
      const upstream = this.upstream!;
      upstream.removeListener("error", noop);
      if (tls !== undefined && connect && target !== undefined && remote !== undefined) {
        this.relay = this.tlsGate(tls, target, remote, upstream, this.upstreamReader);
      } else {
        this.relay = new TcpRelay(this, client, this.clientReader, upstream, this.upstreamReader!, ctx.idleSweeper);
      }
    }
    const injects = this.pendingInjects;
    this.pendingInjects = undefined;
    if (injects !== undefined) for (const { direction, data } of injects) this.relay.inject(direction, data);
    const down = this.earlyDown;
    this.earlyDown = undefined;
    this.relay.start(early, this.clientEnded, down);
  }

  /** The gate becomes a TcpRelay or ServedRelay (plain or over the plaintext) once the first bytes tell. */
  private tlsGate(tls: TlsInterceptor, target: Endpoint, remote: Endpoint, upstream: Socket | undefined, upstreamReader: SocketReader | undefined): TlsGate {
    const { ctx } = this;
    const host = {
      ...this.relayHost(),
      tls,
      target,
      remote,
      handshakeTimeoutMs: ctx.options.handshakeTimeoutMs,
      clock: ctx.clock,
      relayStarted: (relay: TcpRelay | ServedRelay) => {
        if (this.relay === gate) this.relay = relay;
      },
    };
    const gate = new TlsGate(host, this.client, this.clientReader, upstream, upstreamReader, ctx.idleSweeper);
    return gate;
  }

  /** The request's decision after its route is chosen and the destination rules are applied. */
  private decide(request: RequestInfo, decision: RequestDecision): RequestDecision {
    const chosen = this.chooseRoute(request, decision);
    return decideWithRules(this.ctx, this, request, chosen, this.route !== undefined && this.route.length > 0);
  }

  /**
   * The route of a request: an onRequest `{ upstream }` (which otherwise allows), else the
   * engine's default for it. A command the route cannot carry (BIND or UDP through HTTP, UDP
   * through SOCKS4…) is refused with REP 07 and the reason recorded.
   */
  private chooseRoute(request: RequestInfo, decision: RequestDecision): RequestDecision {
    if (decision !== undefined && "upstream" in decision) {
      this.route = decision.upstream;
      decision = undefined;
    } else if (decision === undefined || !("deny" in decision || "serve" in decision)) {
      this.route = this.ctx.route?.(request);
    }
    const route = this.route;
    if (route === undefined || route.length === 0) return decision;
    const cannot = canCarry(route, request.command);
    if (cannot === undefined) return decision;
    this.anomaly("upstream-cannot-carry", `${formatRoute(route)}: ${cannot}`);
    return { deny: "UNKNOWN_COMMAND" };
  }

  /** What a relay (or the TLS gate) needs from this session, as a plain object the gate can extend. */
  private relayHost(): RelayHost {
    return {
      id: this.id,
      observer: this.ctx.observer,
      hooks: this.ctx.hooks,
      handle: this,
      now: () => this.ctx.clock.now(),
      relayEnded: (reason, errno, counts) => this.relayEnded(reason, errno, counts),
      hookFailed: (hook, err) => this.hookFailed(hook, err),
    };
  }

  relayEnded(reason: CloseReason, errno: string | undefined, counts: RelayCounts): void {
    this.finish(reason, errno, counts);
  }

  now(): number {
    return this.ctx.clock.now();
  }

  /**
   * Sends FIN after pending writes (a failure reply) and ignores further input. The socket is
   * destroyed at a fixed deadline even if the client keeps writing (RFC 1928 §6: terminate
   * within 10 seconds of a failure reply).
   */
  private endClient(): void {
    const { client } = this;
    this.clientReader.sink = discard;
    client.resume();
    client.end();
    const { clock } = this.ctx;
    const deadline = clock.setTimeout(() => client.destroy(), LINGER_AFTER_FAILURE_MS);
    client.once("close", () => clock.clearTimeout(deadline));
  }

  /** Closes a session that never reached the relay. */
  private abort(reason: CloseReason, reset: boolean): void {
    if (this.finished) return;
    this.closeReason ??= reason;
    this.handshakeTimer?.cancel();
    this.cancelDial?.();
    this.bind?.close();
    this.upstream?.destroy();
    if (reset) this.client.resetAndDestroy();
    else this.client.destroy();
  }

  private finish(reason: CloseReason, errno: string | undefined, counts: RelayCounts | undefined): void {
    if (this.finished) return;
    this.finished = true;
    this.handshakeTimer?.cancel();
    this.bind?.close();
    const udp = this.udp;
    if (udp !== undefined) {
      udp.close();
      this.ctx.udpAssociationClosed();
      this.udp = undefined;
      counts = { bytesUpReceived: udp.bytesUp, bytesUpSent: udp.bytesUp, bytesDownReceived: udp.bytesDown, bytesDownSent: udp.bytesDown };
    }
    this.ctx.sessionEnded(this);
    if (this.ctx.observed) {
      const fact: Writable<SessionClosedFact> = {
        id: this.id,
        at: this.ctx.clock.now(),
        reason,
        bytesUpReceived: counts?.bytesUpReceived ?? 0,
        bytesUpSent: counts?.bytesUpSent ?? 0,
        bytesDownReceived: counts?.bytesDownReceived ?? 0,
        bytesDownSent: counts?.bytesDownSent ?? 0,
      };
      if (errno !== undefined) fact.errno = errno;
      this.ctx.observer.sessionClosed(fact);
    }
    this.relay = undefined;
  }
}

function noop(): void {}

/** A fact or request being built: optional fields are set only when present (absent, not undefined). */
type Writable<T> = { -readonly [K in keyof T]: T[K] };
