/**
 * One BIND listener (RFC 1928 §4 BIND, SOCKS4 BIND): the port a client's peer connects back to.
 *
 * - It listens on the address the client reached us on (so the peer can reach it the same way),
 *   port chosen by the system, and accepts a single connection: the listener closes as soon as
 *   one peer is in (the port is released), and any other connection is refused.
 * - A peer may connect before the first reply has gone out; it is held (paused) until the
 *   session asks for it with `awaitPeer()`, which also starts the BIND timeout when none came.
 * - It knows nothing of the session machine: the session turns `BindEvents` into machine events
 *   (the check of the peer against the request's address is the machine's). A peer the
 *   destination rules refuse (`check`) is closed and the BIND fails with DENIED (REP 02).
 */
import { createServer, type Server, type Socket } from "node:net";
import type { Endpoint } from "../types.js";
import type { Clock, ClockTimer } from "../ports.js";
import type { ProtocolError } from "../errors.js";
import { normalizeHost } from "../codec/address.js";
import { SocketReader, adoptSocket } from "./socket-reader.js";
import { bindThrough, type BindOptions, type ChainFailure, type ChainSuccess } from "./chain-dialer.js";
import type { Route } from "../upstream.js";

/** The accepted peer, handed to the session, which relays it as its upstream (no "error" listener is left on it). */
export interface BindPeer {
  readonly socket: Socket;
  readonly reader: SocketReader;
  /** The peer's address, for the second reply. */
  readonly remote: Endpoint;
  /** Bytes the peer sent already (through an upstream: read past the last hop's second reply). */
  readonly early?: Buffer;
}

/** What the listener tells its session, at most one of `failed` / `peerConnected` per listener. */
export interface BindEvents {
  /** Listening: the address for the first reply. */
  bindListening(bound: Endpoint): void;
  /**
   * No listener could be opened, or no peer came within the timeout; the listener is closed.
   * Through upstreams, `chain` is the chain's failure (its attempts, the hop that refused our credentials).
   */
  bindFailed(error: ProtocolError, errno: string | undefined, chain?: ChainFailure): void;
  /** The peer, once both it has connected and `awaitPeer()` was called. */
  bindPeerConnected(peer: BindPeer): void;
}

export class BindListener {
  private server: Server | undefined;
  private timer: ClockTimer | undefined;
  /** A peer that connected and was not handed over yet. */
  private peer: { socket: Socket; reader: SocketReader } | undefined;
  /** Set once `awaitPeer()` was called: a peer is handed over as soon as it is in. */
  private awaited = false;
  private closed = false;

  constructor(
    /** The IP the client's connection arrived on: the listener binds here. */
    private readonly host: string,
    /** How long `awaitPeer()` waits for the peer. */
    private readonly timeoutMs: number,
    private readonly events: BindEvents,
    /** Times the BIND timeout (the engine's clock). */
    private readonly clock: Clock,
    /** The destination rules' verdict on the peer: the rule refusing it, or undefined. */
    private readonly check?: (address: string, port: number) => string | undefined,
  ) {}

  /** Starts listening; answers with `bindListening` or `bindFailed`. */
  open(): void {
    const { host } = this;
    const server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true });
    this.server = server;
    server.on("connection", (accepted: Socket) => {
      if (this.peer !== undefined || this.closed) return void accepted.destroy();
      const reader = new SocketReader();
      const socket = adoptSocket(accepted, reader, true, true);
      socket.on("error", noop);
      this.peer = { socket, reader };
      this.stopListening();
      if (this.awaited) this.deliver();
    });
    server.once("error", (err: NodeJS.ErrnoException) => {
      this.stopListening();
      this.events.bindFailed({ code: "GENERAL_FAILURE", message: `BIND listen on ${host}: ${err.message}` }, err.code);
    });
    server.listen({ host, port: 0 }, () => {
      const address = server.address();
      if (address === null || typeof address === "string") return;
      this.events.bindListening({ host: normalizeHost(address.address), port: address.port });
    });
  }

  /**
   * The first reply is out and the session waits for its peer: hands over a peer that has
   * connected already, or starts the BIND timeout (once; later calls change nothing).
   */
  awaitPeer(): void {
    this.awaited = true;
    if (this.peer !== undefined) return this.deliver();
    this.timer ??= this.clock.setTimeout(() => {
      this.stopListening();
      this.events.bindFailed({ code: "CONNECT_TIMEOUT", message: `no inbound connection within ${this.timeoutMs} ms` }, "ETIMEDOUT");
    }, this.timeoutMs);
  }

  /** Stops listening (the port is released) and the timeout; keeps a peer that connected. */
  stopListening(): void {
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.server?.close();
    this.server = undefined;
  }

  /** Stops listening and destroys a peer that was not handed over. */
  close(): void {
    this.closed = true;
    this.stopListening();
    this.peer?.socket.destroy();
    this.peer = undefined;
  }

  private deliver(): void {
    const peer = this.peer!;
    this.peer = undefined;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    // A peer that went away before it was asked for is not delivered: the BIND fails (the
    // listener is closed, so no other peer can come; without this the session would wait forever).
    if (peer.socket.destroyed) {
      this.events.bindFailed({ code: "GENERAL_FAILURE", message: "the inbound connection closed before it could be relayed" }, "ECONNRESET");
      return;
    }
    // Handed over without our listener: the session notices errors its own way from here.
    peer.socket.removeListener("error", noop);
    const remote = { host: normalizeHost(peer.socket.remoteAddress ?? "?"), port: peer.socket.remotePort ?? 0 };
    const rule = this.check?.(remote.host, remote.port);
    if (rule !== undefined) {
      peer.socket.destroy();
      this.events.bindFailed({ code: "DENIED", message: `BIND peer ${remote.host}:${remote.port} denied by ${rule}` }, undefined);
      return;
    }
    this.events.bindPeerConnected({ ...peer, remote });
  }
}

/**
 * BIND at the last hop of `route` (`bindThrough`), driven like a `BindListener`: `bindListening`
 * once the hop listens (its first reply), then either `bindFailed` or `bindPeerConnected` with
 * the chain socket as the peer (its second reply). A failure before the first reply is told at
 * once; the outcome after it is held until `awaitPeer()` (the first reply has gone out), as a
 * peer that connected early is by `BindListener`. The BIND timeout runs at the hop's side of the
 * chain (`BindOptions.bindTimeoutMs`, from the hop's first reply).
 */
export class UpstreamBind {
  private cancel: (() => void) | undefined;
  private listened = false;
  private awaited = false;
  private closed = false;
  private outcome: { failure: ChainFailure | undefined; success: (ChainSuccess & { readonly peer: Endpoint }) | undefined } | undefined;

  constructor(
    private readonly route: Route,
    /** The request's DST: the peer the last hop is to expect. */
    private readonly expectedPeer: Endpoint,
    private readonly options: BindOptions,
    private readonly events: BindEvents,
    /** The destination rules' verdict on the peer the hop reports: the rule refusing it, or undefined. */
    private readonly check?: (address: string, port: number) => string | undefined,
  ) {}

  open(): void {
    this.cancel = bindThrough(this.route, this.expectedPeer, this.options, {
      listening: (bound) => {
        if (this.closed) return;
        this.listened = true;
        this.events.bindListening(bound);
      },
      done: (failure, success) => {
        this.cancel = undefined;
        if (this.closed) return void success?.socket.destroy();
        this.outcome = { failure, success };
        if (!this.listened || this.awaited) this.deliver();
      },
    });
  }

  awaitPeer(): void {
    this.awaited = true;
    if (this.outcome !== undefined) this.deliver();
  }

  /** Gives up on the peer: the chain is closed, so the hop stops listening. */
  stopListening(): void {
    const cancel = this.cancel;
    this.cancel = undefined;
    this.closed = true;
    cancel?.();
  }

  close(): void {
    this.stopListening();
    this.outcome?.success?.socket.destroy();
    this.outcome = undefined;
  }

  private deliver(): void {
    const { failure, success } = this.outcome!;
    this.outcome = undefined;
    if (failure !== undefined) {
      const error = { code: failure.code, message: failure.attempts.join("; ") };
      return this.events.bindFailed(error, failure.errno, failure);
    }
    const { socket, reader, peer, early } = success!;
    const remote = { host: normalizeHost(peer.host), port: peer.port };
    const rule = this.check?.(remote.host, remote.port);
    if (rule !== undefined) {
      socket.destroy();
      this.events.bindFailed({ code: "DENIED", message: `BIND peer ${remote.host}:${remote.port} denied by ${rule}` }, undefined);
      return;
    }
    this.events.bindPeerConnected({ socket, reader, remote, ...(early.length === 0 ? {} : { early }) });
  }
}

function noop(): void {}
