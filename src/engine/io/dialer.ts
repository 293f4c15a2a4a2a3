/**
 * Opens the upstream TCP connection: resolves names once (so rules and the connect see the same
 * addresses), races the addresses with Node's happy eyeballs, bounds the whole thing with the
 * connect timeout, and maps failures to stable codes with the raw errno kept.
 */
import type { LookupAddress } from "node:dns";
import { connect, isIP, type Socket, type TcpNetConnectOpts } from "node:net";
import { codeForErrno, type ProtocolErrorCode } from "../errors.js";
import type { Endpoint } from "../types.js";
import type { Clock, ClockTimer, Lookup } from "../ports.js";
import { formatEndpoint, normalizeHost } from "../codec/address.js";
import { SocketReader } from "./socket-reader.js";
import type { Deadline, DeadlineQueue } from "./deadline-queue.js";

export interface DialOptions {
  /** Milliseconds for resolution plus connect. */
  readonly timeoutMs: number;
  /** Resolves a name target (the engine's, the system resolver by default). */
  readonly lookup: Lookup;
  /** Times the connect timeout (the engine's clock). */
  readonly clock: Clock;
  /** The engine's shared connect deadlines, used instead of a timer of the dial's own when their duration is `timeoutMs`. */
  readonly deadlines?: DeadlineQueue;
  /**
   * Called for every address about to be dialled (an IP literal target, or each address a name
   * resolved to) before any connect; a string (the rule that refuses it) fails the whole dial
   * with DENIED and nothing is dialled, even when other addresses are allowed.
   */
  readonly check?: (address: string, port: number) => string | undefined;
}

export interface DialSuccess {
  readonly socket: Socket;
  /** Where the socket's reads go (see socket-reader.ts). */
  readonly reader: SocketReader;
  /** The address the socket connected to. */
  readonly remote: Endpoint;
  /** Our end of the upstream connection: what CONNECT replies carry as BND.ADDR/BND.PORT. */
  readonly bound: Endpoint;
  /** Every address tried, in order (more than one when happy eyeballs raced several). */
  readonly attempts: readonly string[];
}

export interface DialFailure {
  readonly code: ProtocolErrorCode;
  readonly errno?: string;
  /** One line per address tried. */
  readonly attempts: readonly string[];
}

export type DialCallback = (failure: DialFailure | undefined, success?: DialSuccess) => void;

/** Dials `target` and calls back exactly once. Returns a function that cancels the dial. */
export function dial(target: Endpoint, options: DialOptions, callback: DialCallback): () => void {
  const attempt = new Dial(target, options, callback);
  attempt.begin();
  return attempt.cancel;
}

/**
 * One dial. A class rather than a closure per step: per CONNECT it costs one object and the four
 * functions that must be values (the deadline's callback, the socket's two listeners, `cancel`).
 */
class Dial {
  private done = false;
  private socket: Socket | undefined;
  private reader: SocketReader | undefined;
  /** What a name resolved to (undefined for an IP literal target). */
  private addresses: readonly LookupAddress[] | undefined;
  private deadline: Deadline | undefined;
  private timer: ClockTimer | undefined;

  constructor(
    private readonly target: Endpoint,
    private readonly options: DialOptions,
    private readonly callback: DialCallback,
  ) {}

  begin(): void {
    const { target, options } = this;
    const shared = options.deadlines?.durationMs === options.timeoutMs ? options.deadlines : undefined;
    if (shared !== undefined) this.deadline = shared.add(this.timedOut);
    else this.timer = options.clock.setTimeout(this.timedOut, options.timeoutMs);
    if (isIP(target.host) !== 0) {
      const denied = this.refused(target.host);
      // Called back on a later tick, as every other outcome is: never from inside dial().
      if (denied !== undefined) process.nextTick(() => this.finish(denied));
      else this.open(target.host);
      return;
    }
    options.lookup(target.host, (err, found) => {
      if (this.done) return;
      if (err) return this.finish({ code: "DNS_FAILED", errno: err.code ?? "ENOTFOUND", attempts: [`lookup ${target.host}: ${err.code ?? err.message}`] });
      // Never dial an unspecified address a resolver handed back: Linux treats it as localhost.
      const usable = found.filter((a) => a.address !== "0.0.0.0" && a.address !== "::");
      if (usable.length === 0) return this.finish({ code: "DNS_FAILED", errno: "ENOTFOUND", attempts: [`lookup ${target.host}: no usable address`] });
      for (const { address } of usable) {
        const denied = this.refused(address);
        if (denied !== undefined) return this.finish(denied);
      }
      this.addresses = usable;
      this.open(target.host);
    });
  }

  readonly cancel = (): void => {
    if (this.done) return;
    this.socket?.destroy();
    this.finish({ code: "GENERAL_FAILURE", errno: "ECANCELED", attempts: ["cancelled"] });
  };

  private readonly timedOut = (): void => {
    this.socket?.destroy();
    this.finish({ code: "CONNECT_TIMEOUT", errno: "ETIMEDOUT", attempts: [`timed out after ${this.options.timeoutMs} ms`] });
  };

  private finish(failure: DialFailure | undefined, success?: DialSuccess): void {
    if (this.done) return;
    this.done = true;
    if (this.deadline !== undefined) this.deadline.cancel();
    else this.options.clock.clearTimeout(this.timer);
    this.callback(failure, success);
  }

  /** The failure when `check` refuses `address`, else undefined. */
  private refused(address: string): DialFailure | undefined {
    const { port } = this.target;
    const rule = this.options.check?.(address, port);
    if (rule === undefined) return undefined;
    return { code: "DENIED", attempts: [`${formatEndpoint({ host: normalizeHost(address), port })} denied by ${rule}`] };
  }

  private open(host: string): void {
    if (this.done) return;
    const addresses = this.addresses;
    const reader = new SocketReader();
    const connectOptions: TcpNetConnectOpts = { host, port: this.target.port, allowHalfOpen: true, noDelay: true, onread: reader.onread };
    if (addresses !== undefined) {
      connectOptions.lookup = ((_name: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
        if (opts.all) cb(null, addresses);
        else cb(null, addresses[0]!.address, addresses[0]!.family);
      }) as never;
      connectOptions.autoSelectFamily = addresses.length > 1;
      connectOptions.autoSelectFamilyAttemptTimeout = 250;
    }
    const s = connect(connectOptions);
    // Nothing is read until the relay starts: a target that speaks first (SSH, SMTP banners)
    // must not be read while the reply is still being decided.
    s.pause();
    this.socket = s;
    this.reader = reader;
    // `on`, not `once` (no wrapper per listener): connect fires once, and both listeners go when it
    // does, so a tunnel's socket does not keep the dial alive (its options, addresses, callback).
    s.on("error", this.onError);
    s.on("connect", this.onConnect);
  }

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    this.socket!.destroy();
    this.finish(describeFailure(err, this.target.port));
  };

  private readonly onConnect = (): void => {
    const s = this.socket!;
    s.removeListener("error", this.onError);
    s.removeListener("connect", this.onConnect);
    if (this.done) {
      s.destroy();
      return;
    }
    const { target } = this;
    // Node lists every address it tried when it raced several (autoSelectFamily).
    const tried = s.autoSelectFamilyAttemptedAddresses ?? NONE;
    this.finish(undefined, {
      socket: s,
      reader: this.reader!,
      attempts: tried,
      // Dialling an IP literal, the remote is known: no getpeername.
      remote:
        this.addresses === undefined
          ? { host: normalizeHost(target.host), port: target.port }
          : { host: normalizeHost(s.remoteAddress ?? target.host), port: s.remotePort ?? target.port },
      bound: { host: normalizeHost(s.localAddress ?? "0.0.0.0"), port: s.localPort ?? 0 },
    });
  };
}

const NONE: readonly string[] = [];

/** Maps a connect error (or happy eyeballs' AggregateError) to one code; refused wins. */
type ConnectError = NodeJS.ErrnoException & { address?: string; port?: number };

function describeFailure(err: ConnectError, port: number): DialFailure {
  const inner = err instanceof AggregateError ? (err.errors as ConnectError[]) : [err];
  const attempts = inner.map((e) => `${e.address ?? "?"}:${e.port ?? port} ${e.code ?? e.message}`);
  const codes = inner.map((e) => e.code).filter((c): c is string => c !== undefined);
  const errno = codes.find((c) => c === "ECONNREFUSED") ?? codes[0] ?? err.code;
  return { code: codeForErrno(errno), ...(errno === undefined ? {} : { errno }), attempts };
}
