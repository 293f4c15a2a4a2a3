/**
 * The start of a CONNECT tunnel when TLS interception is on: reads the client's first bytes
 * until the interceptor can tell whether they are a ClientHello, then either relays the tunnel
 * as a plain one (not TLS, passthrough) or lets the interceptor make both handshakes and relays
 * the plaintext. Whichever it is, the tunnel ends up in a TcpRelay, so data hooks, capture,
 * backpressure, half-close and resets work the same on plaintext as on any tunnel.
 *
 * - A server that speaks first (SMTP, SSH, …) is not TLS: its first bytes end the gate, and
 *   they are relayed to the client as the tunnel's first download.
 * - A client FIN, or more than the interceptor will read, before a whole hello: not TLS.
 * - While gated, the tunnel counts as idle unless bytes arrive (the idle sweeper tracks the
 *   gate), and a partial hello must be completed within the handshake timeout.
 * - The hook (`tlsClientHello`) has the last word on intercept vs passthrough; a throw or
 *   rejection counts as no opinion, as for every hook.
 * - One `tls` fact per tunnel that began with a ClientHello, before its relay starts; a failed
 *   handshake closes both sides ("tls-failed") after that fact.
 * - A CONNECT a hook serves (server replay) has no upstream: an intercepted one gets the
 *   client's handshake only (`terminate`) and a ServedRelay over the plaintext; one whose hook
 *   greets first (bytes injected before the client spoke) is not TLS.
 */
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { Direction, Endpoint } from "../types.js";
import type { Clock, ClockTimer, CloseReason } from "../ports.js";
import type { TlsDecidedBy, TlsHello, TlsHelloDecision, TlsInterceptor } from "../tls-ports.js";
import type { RelayCounts, RelayHost } from "./tcp-relay.js";
import { TcpRelay } from "./tcp-relay.js";
import { ServedRelay } from "./served-relay.js";
import { SocketReader, readPlainly } from "./socket-reader.js";
import { RawStream, nativeTlsHandles, setRawSocket } from "./raw-stream.js";
import { callHook } from "./call-hook.js";
import type { IdleSweeper, IdleTracked } from "./idle-sweeper.js";

/** What the gate needs from its session, beyond what a relay needs. */
export interface GateHost extends RelayHost {
  readonly tls: TlsInterceptor;
  /** The destination as requested (after redirects) and the address the upstream socket reached. */
  readonly target: Endpoint;
  readonly remote: Endpoint;
  readonly handshakeTimeoutMs: number;
  readonly clock: Clock;
  /** The relay that now owns the tunnel (the gate hands over to it). */
  relayStarted(relay: TcpRelay | ServedRelay): void;
}

/** At most this many client bytes are read looking for a ClientHello (the interceptor may decide sooner). */
const GATE_MAX = 64 * 1024;

const NO_COUNTS: RelayCounts = { bytesUpReceived: 0, bytesUpSent: 0, bytesDownReceived: 0, bytesDownSent: 0 };

export class TlsGate implements IdleTracked {
  active = false;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private clientEnded = false;
  private upstreamEnded = false;
  private decided = false;
  private ended = false;
  private timer: ClockTimer | undefined;
  private injects: { direction: Direction; data: Uint8Array }[] | undefined;
  private closeReason: CloseReason | undefined;
  private errno: string | undefined;

  constructor(
    private readonly host: GateHost,
    private readonly client: Socket,
    private readonly clientReader: SocketReader,
    /** The target, or undefined for a session a hook serves. */
    private readonly upstream: Socket | undefined,
    private readonly upstreamReader: SocketReader | undefined,
    private readonly idle: IdleSweeper | undefined,
  ) {}

  /** `down`: bytes the far end sent before the relay (an upstream chain's early bytes): the server spoke first. */
  start(early: Buffer, clientEnded: boolean, down?: Buffer): void {
    const { client, upstream } = this;
    if (down !== undefined && down.length > 0) {
      this.clientEnded = clientEnded;
      if (early.length > 0) this.chunks.push(early);
      return this.plain(down);
    }
    // The target went away meanwhile, or a served session's hook greets first: not TLS.
    if (upstream?.destroyed === true || (upstream === undefined && this.injects?.some((i) => i.direction === "down"))) {
      this.clientEnded = clientEnded;
      if (early.length > 0) this.chunks.push(early);
      return this.plain(undefined);
    }
    this.idle?.add(this);
    client.on("end", this.onClientEnd);
    client.on("error", this.onClientError);
    client.on("close", this.onClose);
    if (upstream !== undefined) {
      upstream.on("end", this.onUpstreamEnd);
      upstream.on("error", this.onUpstreamError);
      upstream.on("close", this.onClose);
      // The server speaking first means this is not TLS; its bytes go to the client in the relay.
      this.upstreamReader!.sink = (view) => this.plain(Buffer.from(view));
    }
    this.clientReader.sink = (view) => this.received(Buffer.from(view));
    if (early.length > 0) this.received(early);
    if (clientEnded) this.onClientEnd();
    if (this.decided) return;
    client.resume();
    upstream?.resume();
  }

  /** Hook injects before the relay exists wait for it (plaintext ones for an intercepted tunnel). */
  inject(direction: Direction, data: Uint8Array): void {
    if (!this.ended && data.length > 0) (this.injects ??= []).push({ direction, data: Uint8Array.from(data) });
  }

  writable(): undefined {
    return undefined;
  }

  /** A hook's close before the relay exists: ends both sides. */
  close(mode: "graceful" | "reset", reason: CloseReason): void {
    this.closeReason ??= reason;
    if (mode === "reset") {
      if (!this.client.destroyed) this.client.resetAndDestroy();
      if (this.upstream !== undefined && !this.upstream.destroyed) this.upstream.resetAndDestroy();
    } else {
      this.client.destroy();
      this.upstream?.destroy();
    }
  }

  destroy(reason: CloseReason): void {
    this.closeReason ??= reason;
    this.client.destroy();
    this.upstream?.destroy();
  }

  idleTimedOut(): void {
    this.destroy("idle-timeout");
  }

  private received(bytes: Buffer): void {
    if (this.decided) return;
    this.active = true;
    this.chunks.push(bytes);
    this.size += bytes.length;
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    if (this.chunks.length > 1) this.chunks.splice(0, this.chunks.length, all);
    const seen = this.host.tls.inspect(all);
    if (seen.kind === "not-tls" || (seen.kind === "more" && (this.size >= GATE_MAX || this.clientEnded))) return this.plain(undefined);
    if (seen.kind === "more") {
      this.timer ??= this.host.clock.setTimeout(this.onTimeout, this.host.handshakeTimeoutMs);
      return;
    }
    this.decide(seen.hello);
  }

  private readonly onTimeout = (): void => {
    this.timer = undefined;
    if (this.decided) return;
    this.host.observer.anomaly({
      id: this.host.id,
      at: this.host.now(),
      code: "tls-hello-timeout",
      detail: `no complete TLS ClientHello after ${this.host.handshakeTimeoutMs} ms`,
    });
    this.plain(undefined);
  };

  /** Stops reading both sides while the choice is made. */
  private hold(): void {
    this.decided = true;
    this.host.clock.clearTimeout(this.timer);
    this.idle?.delete(this);
    this.client.pause();
    this.upstream?.pause();
    this.clientReader.sink = discardRead;
    if (this.upstreamReader !== undefined) this.upstreamReader.sink = discardRead;
  }

  private detach(): void {
    const { client, upstream } = this;
    client.removeListener("end", this.onClientEnd);
    client.removeListener("error", this.onClientError);
    client.removeListener("close", this.onClose);
    upstream?.removeListener("end", this.onUpstreamEnd);
    upstream?.removeListener("error", this.onUpstreamError);
    upstream?.removeListener("close", this.onClose);
  }

  private decide(hello: TlsHello): void {
    this.hold();
    const { host } = this;
    const choice = host.tls.choose(hello, host.target);
    const ask = host.hooks.tlsClientHello;
    if (ask === undefined) return this.chosen(hello, choice.intercept, choice.decidedBy, undefined);
    callHook<TlsHelloDecision>(
      () => ask.call(host.hooks, { id: host.id, target: host.target, ...hello }, host.handle),
      (err) => host.hookFailed("tlsClientHello", err),
      (decision) => {
        if (this.ended) return;
        if (decision === undefined) return this.chosen(hello, choice.intercept, choice.decidedBy, undefined);
        this.chosen(hello, "intercept" in decision, "hook", "intercept" in decision && hello.alpn.includes(decision.alpn ?? "") ? decision.alpn : undefined);
      },
    );
  }

  private chosen(hello: TlsHello, intercept: boolean, decidedBy: TlsDecidedBy, alpn: string | undefined): void {
    const { host } = this;
    if (!intercept) {
      host.observer.tls?.({ id: host.id, at: host.now(), intercepted: false, decidedBy, hello });
      return this.plain(undefined);
    }
    if (this.upstream === undefined) return this.serveTls(hello, decidedBy, alpn);
    this.detach();
    const { stream: clientRaw, prelude } = this.clientStream();
    const upstreamRaw = nativeTlsHandles() ? this.upstream : new RawStream(this.upstream, this.upstreamReader!, undefined, false);
    // Until the relay owns the TLS sockets, a raw socket's error only has to be noticed (the Duplex reports it).
    clientRaw.on("error", noop);
    upstreamRaw.on("error", noop);
    const args = { id: host.id, target: host.target, remote: host.remote, hello, client: clientRaw, upstream: upstreamRaw };
    void host.tls.establish(prelude === undefined ? args : { ...args, clientPrelude: prelude }).then((outcome) => {
      if (!outcome.ok) {
        host.observer.tls?.({ id: host.id, at: host.now(), intercepted: false, decidedBy, hello, ...outcome.fact });
        return this.finish(this.closeReason ?? "tls-failed", clientRaw, upstreamRaw);
      }
      const { client, upstream, fact } = outcome;
      if (this.ended || this.client.destroyed || this.upstream!.destroyed) {
        client.destroy();
        upstream.destroy();
        return this.finish(this.closeReason ?? "tls-failed", clientRaw, upstreamRaw);
      }
      host.observer.tls?.({ id: host.id, at: host.now(), decidedBy, hello, ...fact });
      setRawSocket(client, this.client);
      setRawSocket(upstream, this.upstream!);
      const clientReader = new SocketReader();
      const upstreamReader = new SocketReader();
      readPlainly(client, clientReader, true);
      readPlainly(upstream, upstreamReader, true);
      this.startRelay(client, clientReader, upstream, upstreamReader, EMPTY, undefined, false);
    });
  }

  /** An intercepted served session: the client's handshake only, then a ServedRelay over the plaintext. */
  private serveTls(hello: TlsHello, decidedBy: TlsDecidedBy, alpn: string | undefined): void {
    const { host } = this;
    const terminate = host.tls.terminate;
    if (terminate === undefined) {
      host.observer.tls?.({ id: host.id, at: host.now(), intercepted: false, decidedBy, hello });
      return this.plain(undefined);
    }
    this.detach();
    const { stream: clientRaw, prelude } = this.clientStream();
    clientRaw.on("error", noop);
    const args = { id: host.id, target: host.target, hello, client: clientRaw, ...(alpn === undefined ? {} : { alpn }) };
    void terminate.call(host.tls, prelude === undefined ? args : { ...args, clientPrelude: prelude }).then((outcome) => {
      if (!outcome.ok) {
        host.observer.tls?.({ id: host.id, at: host.now(), intercepted: false, decidedBy, hello, ...outcome.fact });
        return this.finish(this.closeReason ?? "tls-failed", clientRaw);
      }
      const { client, fact } = outcome;
      if (this.ended || this.client.destroyed) {
        client.destroy();
        return this.finish(this.closeReason ?? "tls-failed", clientRaw);
      }
      host.observer.tls?.({ id: host.id, at: host.now(), decidedBy, hello, ...fact });
      setRawSocket(client, this.client);
      const reader = new SocketReader();
      readPlainly(client, reader, true);
      this.ended = true;
      const relay = new ServedRelay(host, client, reader, this.idle);
      host.relayStarted(relay);
      this.flushInjects(relay);
      relay.start(EMPTY, false);
    });
  }

  /**
   * What the TLS server side reads: the client socket itself, its ClientHello handed over as a
   * prelude (Node then runs TLS on the socket's own handle), or, where that is not available
   * (`nativeTlsHandles`), a RawStream that replays the hello and is read in JavaScript.
   */
  private clientStream(): { stream: Duplex; prelude?: Buffer } {
    const buffered = this.takeBuffered();
    if (nativeTlsHandles() && !this.clientEnded) return { stream: this.client, ...(buffered === undefined ? {} : { prelude: buffered }) };
    return { stream: new RawStream(this.client, this.clientReader, buffered, this.clientEnded) };
  }

  /** Everything the client sent so far. */
  private takeBuffered(): Buffer | undefined {
    const all = this.chunks.length === 0 ? undefined : this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
    this.chunks.length = 0;
    return all;
  }

  /** Relays the raw sockets as a plain tunnel; `down` is the server's first bytes when it spoke first. */
  private plain(down: Buffer | undefined): void {
    if (this.ended) return;
    if (!this.decided) this.hold();
    this.detach();
    const early = this.takeBuffered() ?? EMPTY;
    if (this.upstream === undefined) {
      this.ended = true;
      const relay = new ServedRelay(this.host, this.client, this.clientReader, this.idle);
      this.host.relayStarted(relay);
      this.flushInjects(relay);
      return relay.start(early, this.clientEnded);
    }
    this.startRelay(this.client, this.clientReader, this.upstream, this.upstreamReader!, early, down, this.upstreamEnded);
  }

  private flushInjects(relay: TcpRelay | ServedRelay): void {
    for (const { direction, data } of this.injects ?? []) relay.inject(direction, data);
    this.injects = undefined;
  }

  private startRelay(
    client: Socket,
    clientReader: SocketReader,
    upstream: Socket,
    upstreamReader: SocketReader,
    early: Buffer,
    down: Buffer | undefined,
    upstreamEnded: boolean,
  ): void {
    this.ended = true;
    const relay = new TcpRelay(this.host, client, clientReader, upstream, upstreamReader, this.idle);
    this.host.relayStarted(relay);
    this.flushInjects(relay);
    relay.start(early, this.clientEnded && client === this.client, down, upstreamEnded);
  }

  /** Ends a tunnel that never reached a relay. */
  private finish(reason: CloseReason, ...streams: { destroy(): void }[]): void {
    if (this.ended) return;
    this.ended = true;
    this.host.clock.clearTimeout(this.timer);
    this.idle?.delete(this);
    this.detach();
    for (const stream of streams) stream.destroy();
    this.client.destroy();
    this.upstream?.destroy();
    // Both sockets are destroyed; report once the last one has closed.
    const upstream = this.upstream;
    let open = (this.client.closed ? 0 : 1) + (upstream === undefined || upstream.closed ? 0 : 1);
    const done = (): void => {
      if (--open <= 0) this.host.relayEnded(reason, this.errno, NO_COUNTS);
    };
    if (open === 0) return void queueMicrotask(() => this.host.relayEnded(reason, this.errno, NO_COUNTS));
    if (!this.client.closed) this.client.once("close", done);
    if (upstream !== undefined && !upstream.closed) upstream.once("close", done);
  }

  private readonly onClientEnd = (): void => {
    this.clientEnded = true;
    if (!this.decided) this.plain(undefined);
  };

  private readonly onUpstreamEnd = (): void => {
    // The server closed before the client said anything TLS: relay what there is (the FIN is passed on).
    this.upstreamEnded = true;
    if (!this.decided) this.plain(undefined);
  };

  private readonly onClientError = (err: NodeJS.ErrnoException): void => {
    this.closeReason ??= err.code === "ECONNRESET" ? "client-reset" : "client-error";
    this.errno ??= err.code;
    this.upstream?.destroy();
  };

  private readonly onUpstreamError = (err: NodeJS.ErrnoException): void => {
    this.closeReason ??= err.code === "ECONNRESET" ? "target-reset" : "target-error";
    this.errno ??= err.code;
    this.client.destroy();
  };

  private readonly onClose = (): void => {
    if (this.ended) return;
    this.closeReason ??= "client-closed";
    this.finish(this.closeReason);
  };
}

const EMPTY = Buffer.alloc(0);

function discardRead(): void {}

function noop(): void {}
