/**
 * Opens the upstream TCP connection: resolves names once (so rules and the connect see the same
 * addresses), races the addresses with Node's happy eyeballs, bounds the whole thing with the
 * connect timeout, and maps failures to stable codes with the raw errno kept.
 */
import type { LookupAddress } from "node:dns";
import { connect, isIP, type Socket } from "node:net";
import { codeForErrno, type ProtocolErrorCode } from "../errors.js";
import type { Endpoint } from "../types.js";
import type { Clock, Lookup } from "../ports.js";
import { formatEndpoint, normalizeHost } from "../codec/address.js";
import { SocketReader } from "./socket-reader.js";
import type { DeadlineQueue } from "./deadline-queue.js";

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
  let done = false;
  let socket: Socket | undefined;
  const finish = (failure: DialFailure | undefined, success?: DialSuccess): void => {
    if (done) return;
    done = true;
    if (deadline !== undefined) deadline.cancel();
    else options.clock.clearTimeout(timer);
    callback(failure, success);
  };
  const timedOut = (): void => {
    socket?.destroy();
    finish({ code: "CONNECT_TIMEOUT", errno: "ETIMEDOUT", attempts: [`timed out after ${options.timeoutMs} ms`] });
  };
  const shared = options.deadlines?.durationMs === options.timeoutMs ? options.deadlines : undefined;
  const deadline = shared?.add(timedOut);
  const timer = shared === undefined ? options.clock.setTimeout(timedOut, options.timeoutMs) : undefined;

  const open = (host: string, addresses: readonly LookupAddress[] | undefined): void => {
    if (done) return;
    const reader = new SocketReader();
    const s = connect({
      host,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: reader.onread,
      ...(addresses === undefined
        ? {}
        : {
            lookup: ((_name: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
              if (opts.all) cb(null, addresses);
              else cb(null, addresses[0]!.address, addresses[0]!.family);
            }) as never,
            autoSelectFamily: addresses.length > 1,
            autoSelectFamilyAttemptTimeout: 250,
          }),
    });
    // Nothing is read until the relay starts: a target that speaks first (SSH, SMTP banners)
    // must not be read while the reply is still being decided.
    s.pause();
    socket = s;
    const onError = (err: NodeJS.ErrnoException): void => {
      s.destroy();
      finish(describeFailure(err, target.port));
    };
    // `on`, not `once` (no wrapper per listener): connect fires once, and both listeners go when it
    // does, so a tunnel's socket does not keep the dial (its options, closures, addresses) alive.
    const onConnect = (): void => {
      s.removeListener("error", onError);
      s.removeListener("connect", onConnect);
      if (done) {
        s.destroy();
        return;
      }
      // Node lists every address it tried when it raced several (autoSelectFamily).
      const tried = s.autoSelectFamilyAttemptedAddresses ?? [];
      finish(undefined, {
        socket: s,
        reader,
        attempts: tried,
        // Dialling an IP literal, the remote is known: no getpeername.
        remote:
          addresses === undefined
            ? { host: normalizeHost(host), port: target.port }
            : { host: normalizeHost(s.remoteAddress ?? host), port: s.remotePort ?? target.port },
        bound: { host: normalizeHost(s.localAddress ?? "0.0.0.0"), port: s.localPort ?? 0 },
      });
    };
    s.on("error", onError);
    s.on("connect", onConnect);
  };

  /** The failure when `check` refuses one of `addresses`, else undefined. */
  const refused = (addresses: readonly string[]): DialFailure | undefined => {
    for (const address of addresses) {
      const rule = options.check?.(address, target.port);
      if (rule !== undefined) return { code: "DENIED", attempts: [`${formatEndpoint({ host: normalizeHost(address), port: target.port })} denied by ${rule}`] };
    }
    return undefined;
  };

  if (isIP(target.host) !== 0) {
    const denied = refused([target.host]);
    // Called back on a later tick, as every other outcome is: never from inside dial().
    if (denied !== undefined) process.nextTick(finish, denied);
    else open(target.host, undefined);
  } else {
    options.lookup(target.host, (err, found) => {
      if (done) return;
      if (err) return finish({ code: "DNS_FAILED", errno: err.code ?? "ENOTFOUND", attempts: [`lookup ${target.host}: ${err.code ?? err.message}`] });
      // Never dial an unspecified address a resolver handed back: Linux treats it as localhost.
      const usable = found.filter((a) => a.address !== "0.0.0.0" && a.address !== "::");
      if (usable.length === 0) return finish({ code: "DNS_FAILED", errno: "ENOTFOUND", attempts: [`lookup ${target.host}: no usable address`] });
      const denied = refused(usable.map((a) => a.address));
      if (denied !== undefined) return finish(denied);
      open(target.host, usable);
    });
  }
  return () => {
    if (done) return;
    socket?.destroy();
    finish({ code: "GENERAL_FAILURE", errno: "ECANCELED", attempts: ["cancelled"] });
  };
}

/** Maps a connect error (or happy eyeballs' AggregateError) to one code; refused wins. */
type ConnectError = NodeJS.ErrnoException & { address?: string; port?: number };

function describeFailure(err: ConnectError, port: number): DialFailure {
  const inner = err instanceof AggregateError ? (err.errors as ConnectError[]) : [err];
  const attempts = inner.map((e) => `${e.address ?? "?"}:${e.port ?? port} ${e.code ?? e.message}`);
  const codes = inner.map((e) => e.code).filter((c): c is string => c !== undefined);
  const errno = codes.find((c) => c === "ECONNREFUSED") ?? codes[0] ?? err.code;
  return { code: codeForErrno(errno), ...(errno === undefined ? {} : { errno }), attempts };
}
