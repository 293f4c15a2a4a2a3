/**
 * Connects through a route of upstream proxies (`engine/upstream.ts`): TCP to hop 1 with `dial`
 * (name resolution, happy eyeballs), then over that one socket each hop's protocol to reach the
 * next hop, and at the last hop the request itself: SOCKS5 (no auth, or RFC 1929 username/password
 * when the hop has credentials), SOCKS4/4a, or HTTP CONNECT (Basic credentials). `dialChain` asks
 * the last hop for CONNECT, `bindThrough` for BIND (two replies), `associateThrough` for a UDP
 * association (one SOCKS5 hop); `canCarry` (upstream.ts) says which routes carry which command.
 * Pure engine code: it knows nothing of sessions, hooks or the capture.
 *
 * Contract, the same as `dial`'s: the callback is called exactly once, with a failure or with a
 * connected, paused socket whose reader's sink is `discard`; the returned function cancels
 * (a cancelled dial calls back with GENERAL_FAILURE / ECANCELED). The whole chain (the TCP
 * connect, each hop's answer, names resolved for socks5/socks4 hops) is bounded by `timeoutMs`:
 * a hop that does not answer in time fails with CONNECT_TIMEOUT naming that hop.
 *
 * Failures keep what the session needs to answer truthfully (`ChainFailure`): the hop (1-based),
 * a SOCKS5 hop's own REP (pass it on as is), an HTTP hop's status, and `authFailedHop` when a
 * hop refused our credentials or wanted some we did not have (reply REP 01 and record an event
 * naming the hop). `attempts` lines name the hop (`hop 2 socks5://10.0.0.2:1080: ...`), never its
 * credentials.
 *
 * REP and status mappings (`codeForRep`, `codeForHttpStatus`): REP 01..08 map to the code whose
 * `socks5Rep` is that REP (01 general, 02 not allowed, 03 network, 04 host, 05 refused, 06 TTL,
 * 07 command, 08 address type); any other REP is GENERAL_FAILURE with `rep` kept. SOCKS4 CD 93
 * (user id refused) is an auth failure, every other rejection GENERAL_FAILURE (SOCKS4 says no
 * more). HTTP: 403 → DENIED (REP 02), 407 → AUTH_FAILED with `authFailedHop`, 502 and 503 (what
 * proxies send when their connect or lookup fails) → HOST_UNREACHABLE (REP 04), 504 →
 * CONNECT_TIMEOUT (REP 06), any other non-2xx → GENERAL_FAILURE.
 */
import type { Socket } from "node:net";
import { isIP, isIPv4 } from "node:net";
import type { ProtocolErrorCode } from "../errors.js";
import type { Endpoint, SocksAddress, SocksCommand } from "../types.js";
import { canCarry, formatHop, type Route, type UpstreamHop } from "../upstream.js";
import type { Decoded } from "../codec/result.js";
import { hex } from "../codec/address.js";
import { METHOD, decodeMethodSelection, decodeReply, encodeGreeting, encodeRequest } from "../codec/socks5.js";
import { decodeUserPassStatus, encodeUserPass, USERPASS_SUCCESS } from "../codec/userpass.js";
import { decodeSocks4Reply, encodeSocks4Request } from "../codec/socks4.js";
import { decodeConnectResponse, encodeConnectRequest } from "../codec/http-connect.js";
import { dial, type DialFailure, type DialOptions, type DialSuccess } from "./dialer.js";
import { type SocketReader, discard } from "./socket-reader.js";

export interface ChainSuccess extends DialSuccess {
  /**
   * `socket`, `reader` and `attempts` as from `dial` (to hop 1); `remote` is hop 1's address (the
   * socket's peer); `bound` is what the last hop reported as BND.ADDR/BND.PORT (0.0.0.0:0 when
   * the last hop is HTTP, which reports none). With an empty route, exactly `dial`'s success.
   */
  readonly bound: Endpoint;
  /** Bytes read past the last hop's reply: the first bytes of the tunnel from the far end (often empty). */
  readonly early: Buffer;
}

export interface ChainFailure extends DialFailure {
  /** The hop (1-based) whose connect, silence or answer failed; absent when cancelled. */
  readonly hop?: number;
  /** The REP byte a SOCKS5 hop answered with: the session passes it on as is. */
  readonly rep?: number;
  /** The status an HTTP hop answered with. */
  readonly status?: number;
  /** Set (to `hop`) when that hop refused our credentials or wanted some we did not have: reply REP 01. */
  readonly authFailedHop?: number;
}

/** Callable wherever a `DialCallback` is expected: a session's dial callback works unchanged. */
export type ChainCallback = (failure: ChainFailure | undefined, success?: ChainSuccess) => void;

export interface BindOptions extends DialOptions {
  /** How long the last hop may wait for the peer after its first reply (the engine's BIND timeout). */
  readonly bindTimeoutMs: number;
}

export interface BindEvents {
  /** The last hop listens (its first reply): the address and port to announce to the client. At most once, before `done`. */
  listening(bound: Endpoint): void;
  /**
   * Exactly once: a failure, or the peer connected (the second reply) with the socket handed over
   * as by `dialChain` (`bound` is the first reply's address, `peer` the second's).
   */
  done(failure: ChainFailure | undefined, success?: ChainSuccess & { readonly peer: Endpoint }): void;
}

/** Dials `target` through `route` (direct when empty) and calls back exactly once. Returns a function that cancels. */
export function dialChain(route: Route, target: Endpoint, options: DialOptions, callback: ChainCallback): () => void {
  if (route.length === 0) return dial(target, options, (failure, success) => callback(failure, success && { ...success, early: Buffer.alloc(0) }));
  return runChain(route, target, "connect", options, {
    listening() {},
    done: (failure, success) => callback(failure, success && withoutPeer(success)),
  });
}

/**
 * BIND through `route`: CONNECTs to each next hop, then asks the last hop (which must speak SOCKS,
 * see `canCarry`) to BIND for `expectedPeer`. The connect and the first reply are bounded by
 * `timeoutMs`, the second reply by `bindTimeoutMs` (CONNECT_TIMEOUT, as the engine's own BIND).
 * A first reply of 0.0.0.0 (SOCKS4 says: the server's own address) is announced as hop 1's
 * address for a one-hop route, as the last hop's host otherwise. An empty route, or one that
 * cannot BIND, fails with UNKNOWN_COMMAND (the engine BINDs directly itself).
 */
export function bindThrough(route: Route, expectedPeer: Endpoint, options: BindOptions, events: BindEvents): () => void {
  const reason = route.length === 0 ? "BIND through an empty route is the engine's own BIND" : canCarry(route, "bind");
  if (reason !== undefined) return refuse(reason, (failure) => events.done(failure));
  return runChain(route, expectedPeer, "bind", options, events);
}

/** A UDP association at a route's SOCKS5 hop: its control connection and where its relay listens. */
export interface AssociationSuccess extends ChainSuccess {
  /**
   * The hop's UDP relay (its BND.ADDR/BND.PORT; an unspecified address is replaced by the hop's
   * own, RFC 1928 §6): send it datagrams wrapped in the SOCKS5 UDP header (`encodeUdpDatagram`),
   * and it sends replies wrapped the same way. `socket` is the control connection: the
   * association lives while it stays open (keep reading it; its end ends the association).
   */
  readonly bound: Endpoint;
}

/**
 * UDP ASSOCIATE at the one SOCKS5 hop of `route` (see `canCarry`: a longer route, or another
 * scheme, fails with UNKNOWN_COMMAND and the reason). `from` is where our datagrams will come
 * from (the request's DST.ADDR/DST.PORT; 0.0.0.0:0 when not known yet, which RFC 1928 allows).
 * Bounded by `timeoutMs` like `dialChain`, with the same failures.
 */
export function associateThrough(
  route: Route,
  options: DialOptions,
  callback: (failure: ChainFailure | undefined, success?: AssociationSuccess) => void,
  from: Endpoint = { host: "0.0.0.0", port: 0 },
): () => void {
  const reason = route.length === 0 ? "UDP ASSOCIATE through an empty route is the engine's own association" : canCarry(route, "udp");
  if (reason !== undefined) return refuse(reason, callback);
  return runChain(route, from, "udp", options, {
    listening() {},
    done: (failure, success) => callback(failure, success && withoutPeer(success)),
  });
}

/** Calls back with UNKNOWN_COMMAND and `reason` on a later microtask (never inside the call), unless cancelled first. */
function refuse(reason: string, callback: (failure: ChainFailure) => void): () => void {
  let cancelled = false;
  queueMicrotask(() => {
    if (!cancelled) callback({ code: "UNKNOWN_COMMAND", attempts: [reason] });
  });
  return () => {
    cancelled = true;
  };
}

/** The error code closest to a SOCKS5 REP byte (the inverse of `socks5Rep` for 01..08). */
export function codeForRep(rep: number): ProtocolErrorCode {
  switch (rep) {
    case 0x02:
      return "DENIED";
    case 0x03:
      return "NETWORK_UNREACHABLE";
    case 0x04:
      return "HOST_UNREACHABLE";
    case 0x05:
      return "CONNECTION_REFUSED";
    case 0x06:
      return "CONNECT_TIMEOUT";
    case 0x07:
      return "UNKNOWN_COMMAND";
    case 0x08:
      return "UNKNOWN_ADDRESS_TYPE";
    default:
      return "GENERAL_FAILURE";
  }
}

/** The error code for an HTTP proxy's non-2xx answer to CONNECT (see the file comment). */
export function codeForHttpStatus(status: number): ProtocolErrorCode {
  switch (status) {
    case 403:
      return "DENIED";
    case 407:
      return "AUTH_FAILED";
    case 502:
    case 503:
      return "HOST_UNREACHABLE";
    case 504:
      return "CONNECT_TIMEOUT";
    default:
      return "GENERAL_FAILURE";
  }
}

/** A failure raised inside a hop's exchange; caught by `runChain`, never thrown out of this module. */
class HopFailed extends Error {
  constructor(readonly failure: ChainFailure) {
    super(failure.attempts.join("; "));
  }
}

/** What the exchange is doing, for the timeout's message. */
interface Stage {
  hop: number;
  waiting: "connect" | "answer" | "lookup" | "peer";
}

function runChain(route: Route, target: Endpoint, command: SocksCommand, options: DialOptions | BindOptions, events: BindEvents): () => void {
  let done = false;
  let cancelDial: (() => void) | undefined;
  let talk: Talk | undefined;
  const stage: Stage = { hop: 1, waiting: "connect" };
  const label = (n: number): string => `hop ${n} ${formatHop(route[n - 1]!)}`;

  const finish = (failure: ChainFailure | undefined, success?: ChainSuccess & { peer: Endpoint }): void => {
    if (done) return;
    done = true;
    options.clock.clearTimeout(timer);
    if (failure !== undefined) {
      cancelDial?.();
      talk?.destroy();
    }
    events.done(failure, success);
  };
  const expire = (ms: number): void => {
    const what =
      stage.waiting === "connect"
        ? "connect timed out"
        : stage.waiting === "lookup"
          ? "name lookup timed out"
          : stage.waiting === "peer"
            ? "no inbound connection"
            : "no answer";
    const attempt = `${label(stage.hop)}: ${what} within ${ms} ms`;
    finish({ code: "CONNECT_TIMEOUT", errno: "ETIMEDOUT", hop: stage.hop, attempts: [attempt] });
  };
  let timer = options.clock.setTimeout(() => expire(options.timeoutMs), options.timeoutMs);

  const first = route[0]!;
  cancelDial = dial({ host: first.host, port: first.port }, options, (failure, connected) => {
    cancelDial = undefined;
    if (done) return connected?.socket.destroy();
    if (failure !== undefined) {
      const attempts = failure.attempts.map((line) => `${label(1)}: ${line}`);
      return finish({ ...failure, hop: 1, attempts });
    }
    const dialled = connected!;
    const t = new Talk(dialled.socket, dialled.reader);
    talk = t;
    const converse = async (): Promise<ChainSuccess & { peer: Endpoint }> => {
      for (let i = 0; i < route.length - 1; i++) {
        const next = route[i + 1]!;
        await request(t, route, i + 1, "connect", { host: next.host, port: next.port }, options, stage);
      }
      const last = route.length;
      const bound = await request(t, route, last, command, target, options, stage);
      if (command === "connect") return { ...dialled, bound, early: t.release(), peer: bound };
      if (command === "udp") {
        // RFC 1928 §6: an unspecified BND.ADDR means the relay is at the server's own address.
        const relay = isUnspecified(bound.host) ? { host: dialled.remote.host, port: bound.port } : bound;
        return { ...dialled, bound: relay, early: t.release(), peer: relay };
      }
      const announced = isUnspecified(bound.host) ? { host: route.length === 1 ? dialled.remote.host : route[last - 1]!.host, port: bound.port } : bound;
      if (done) throw new HopFailed({ code: "GENERAL_FAILURE", attempts: ["cancelled"] });
      events.listening(announced);
      options.clock.clearTimeout(timer);
      const bindTimeoutMs = (options as BindOptions).bindTimeoutMs;
      stage.waiting = "peer";
      timer = options.clock.setTimeout(() => expire(bindTimeoutMs), bindTimeoutMs);
      const peer = await answer(t, route, last, "bind");
      return { ...dialled, bound: announced, peer, early: t.release() };
    };
    converse().then(
      (success) => {
        if (done) return dialled.socket.destroy();
        finish(undefined, success);
      },
      (err: unknown) => {
        if (err instanceof HopFailed) return finish({ hop: stage.hop, ...err.failure });
        finish({ code: "GENERAL_FAILURE", hop: stage.hop, attempts: [`${label(stage.hop)}: ${err instanceof Error ? err.message : String(err)}`] });
      },
    );
  });
  return () => {
    if (done) return;
    finish({ code: "GENERAL_FAILURE", errno: "ECANCELED", attempts: ["cancelled"] });
  };
}

/**
 * Asks hop `n` of `route` (1-based) for `command` to `destination` over `t`, and resolves with
 * the address its (first) reply reported. Throws HopFailed.
 */
async function request(t: Talk, route: Route, n: number, command: SocksCommand, destination: Endpoint, options: DialOptions, stage: Stage): Promise<Endpoint> {
  const hop = route[n - 1]!;
  const label = `hop ${n} ${formatHop(hop)}`;
  const failed = (code: ProtocolErrorCode, text: string, extra: Partial<ChainFailure> = {}): HopFailed =>
    new HopFailed({ code, hop: n, attempts: [`${label}: ${text}`], ...extra });
  stage.hop = n;
  switch (hop.scheme) {
    case "socks5":
    case "socks5h": {
      const address = await socksAddress(hop, destination, options, stage, failed);
      stage.waiting = "answer";
      const withAuth = hop.user !== undefined;
      t.write(encodeGreeting({ methods: withAuth ? [METHOD.NO_AUTHENTICATION_REQUIRED, METHOD.USERNAME_PASSWORD] : [METHOD.NO_AUTHENTICATION_REQUIRED] }));
      const method = await t.read(decodeMethodSelection, label);
      if (method === METHOD.NO_ACCEPTABLE_METHODS) {
        const text = withAuth ? "accepted neither no authentication nor our credentials" : "wants authentication and no credentials were given";
        throw failed("AUTH_FAILED", text, { authFailedHop: n });
      }
      if (method === METHOD.USERNAME_PASSWORD && withAuth) {
        t.write(encodeUserPass({ user: Buffer.from(hop.user!, "utf8"), password: Buffer.from(hop.password ?? "", "utf8") }));
        const status = await t.read(decodeUserPassStatus, label);
        if (status !== USERPASS_SUCCESS) throw failed("AUTH_FAILED", "refused the credentials", { authFailedHop: n });
      } else if (method !== METHOD.NO_AUTHENTICATION_REQUIRED) {
        throw failed("GENERAL_FAILURE", `chose method 0x${hex(method)}, which was not offered`);
      }
      t.write(encodeRequest({ command, rsv: 0, destination: address }));
      return answer(t, route, n, command);
    }
    case "socks4":
    case "socks4a": {
      const address = await socksAddress(hop, destination, options, stage, failed);
      stage.waiting = "answer";
      if (address.type === "ipv6" && hop.scheme === "socks4")
        throw failed("UNKNOWN_ADDRESS_TYPE", `cannot carry the IPv6 address ${address.host} (SOCKS4 is IPv4 only)`);
      if (command === "udp") throw failed("UNKNOWN_COMMAND", "SOCKS4 has no UDP ASSOCIATE");
      const version = address.type === "ipv4" ? 4 : "4a";
      const userid = Buffer.from(hop.user ?? "", "utf8");
      t.write(encodeSocks4Request({ version, command, destination: address, userid }));
      return answer(t, route, n, command);
    }
    case "http": {
      if (command !== "connect") throw failed("UNKNOWN_COMMAND", `HTTP CONNECT has no ${command === "bind" ? "BIND" : "UDP ASSOCIATE"}`);
      // A space, control character or bracket in the name could end or bend the request line.
      if (/[\x00-\x20\x7f[\]/@]/.test(destination.host) || destination.host === "") {
        throw failed("BAD_DESTINATION", `cannot ask for ${JSON.stringify(destination.host)} in an HTTP request line`);
      }
      stage.waiting = "answer";
      const credentials = hop.user === undefined ? undefined : { user: hop.user, password: hop.password ?? "" };
      t.write(encodeConnectRequest({ host: destination.host, port: destination.port, ...(credentials === undefined ? {} : { credentials }) }));
      const response = await t.read(decodeConnectResponse, label);
      if (response.status >= 200 && response.status < 300) return { host: "0.0.0.0", port: 0 };
      const code = codeForHttpStatus(response.status);
      const text = `answered ${response.status}${response.reason === "" ? "" : ` ${response.reason}`}`.replace(/[^\x20-\x7e]/g, "?");
      throw failed(code, response.status === 407 ? `refused the credentials (${text})` : text, {
        status: response.status,
        ...(code === "AUTH_FAILED" ? { authFailedHop: n } : {}),
      });
    }
  }
}

/** Reads one SOCKS reply of hop `n` (SOCKS4 or SOCKS5 by its scheme) and resolves with its address; a refusal throws. */
async function answer(t: Talk, route: Route, n: number, command: SocksCommand): Promise<Endpoint> {
  const hop = route[n - 1]!;
  const label = `hop ${n} ${formatHop(hop)}`;
  const what = command === "bind" ? "BIND" : command === "udp" ? "UDP ASSOCIATE" : "CONNECT";
  if (hop.scheme === "socks5" || hop.scheme === "socks5h") {
    const reply = await t.read(decodeReply, label);
    if (reply.rep !== 0) {
      throw new HopFailed({ code: codeForRep(reply.rep), rep: reply.rep, hop: n, attempts: [`${label}: refused the ${what} with REP 0x${hex(reply.rep)}`] });
    }
    return { host: reply.bound.host, port: reply.bound.port };
  }
  const reply = await t.read(decodeSocks4Reply, label);
  if (reply.cd === 90) return { host: reply.ip, port: reply.port };
  const authFailed = reply.cd === 93;
  throw new HopFailed({
    code: authFailed ? "AUTH_FAILED" : "GENERAL_FAILURE",
    hop: n,
    attempts: [`${label}: ${authFailed ? "refused the user id" : `rejected the ${what}`} (CD ${reply.cd})`],
    ...(authFailed ? { authFailedHop: n } : {}),
  });
}

/**
 * The destination as a SOCKS hop sends it: socks5h and socks4a send names as names; socks5 and
 * socks4 send addresses, resolving names here (`options.lookup`; socks4 takes the first IPv4).
 */
async function socksAddress(
  hop: UpstreamHop,
  destination: Endpoint,
  options: DialOptions,
  stage: Stage,
  failed: (code: ProtocolErrorCode, text: string, extra?: Partial<ChainFailure>) => HopFailed,
): Promise<SocksAddress> {
  const { host, port } = destination;
  const family = isIP(host);
  if (family !== 0) return { type: family === 4 ? "ipv4" : "ipv6", host, port };
  if (host === "" || Buffer.byteLength(host, "latin1") > 255) throw failed("BAD_DESTINATION", "cannot carry a name that is empty or longer than 255 bytes");
  if (hop.scheme === "socks5h" || hop.scheme === "socks4a") return { type: "domain", host, port };
  stage.waiting = "lookup";
  const found = await new Promise<{ address?: string; errno?: string }>((resolve) =>
    options.lookup(host, (err, addresses) => {
      if (err) return resolve({ errno: err.code ?? "ENOTFOUND" });
      const usable = addresses.filter((a) => a.address !== "0.0.0.0" && a.address !== "::" && (hop.scheme !== "socks4" || isIPv4(a.address)));
      resolve(usable.length === 0 ? { errno: "ENOTFOUND" } : { address: usable[0]!.address });
    }),
  );
  if (found.address === undefined) {
    const none = hop.scheme === "socks4" ? "no usable IPv4 address" : "no usable address";
    throw failed("DNS_FAILED", `lookup ${host}: ${found.errno === "ENOTFOUND" ? none : found.errno}`, { errno: found.errno ?? "ENOTFOUND" });
  }
  return { type: isIPv4(found.address) ? "ipv4" : "ipv6", host: found.address, port };
}

function isUnspecified(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

function withoutPeer(success: ChainSuccess & { peer?: Endpoint }): ChainSuccess {
  const { peer: _peer, ...rest } = success;
  return rest;
}

/** Most bytes held while waiting for hop replies (a reply is at most 16 KiB; the rest is early tunnel data). */
const PENDING_MAX = 256 * 1024;

/**
 * The handshake's side of a dialled socket: reads land in `pending` (copied: the reader's views
 * are valid during its call only), `read` decodes one message out of it, `release` pauses the
 * socket, resets the sink to `discard` and hands over whatever was read past the last message.
 */
class Talk {
  private pending = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  /** Why no more bytes will come (the hop ended, reset or the socket was destroyed), once known. */
  private gone: { text: string; errno?: string } | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly reader: SocketReader,
  ) {
    reader.sink = (view) => {
      this.pending = this.pending.length === 0 ? Buffer.from(view) : Buffer.concat([this.pending, view]);
      // A hop that floods before its reply (say, while a name is looked up for the next request) is
      // not read further; its reply is decoded from what came, or the chain's timeout ends it.
      if (this.pending.length >= PENDING_MAX) this.socket.pause();
      this.wake?.();
    };
    socket.on("end", this.onEnd);
    socket.on("error", this.onError);
    socket.on("close", this.onClose);
    socket.resume();
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Decodes one message of hop `label`; throws HopFailed when the hop answers nonsense or goes away first. */
  async read<T>(decode: (bytes: Uint8Array) => Decoded<T>, label: string): Promise<T> {
    for (;;) {
      const result = decode(this.pending);
      if (result.kind === "ok") {
        this.pending = this.pending.subarray(result.used);
        return result.value;
      }
      if (result.kind === "error") {
        throw new HopFailed({ code: "GENERAL_FAILURE", attempts: [`${label}: answered nonsense: ${result.error.message}`] });
      }
      if (this.gone !== undefined) {
        const { text, errno } = this.gone;
        throw new HopFailed({ code: "GENERAL_FAILURE", attempts: [`${label}: ${text}`], ...(errno === undefined ? {} : { errno }) });
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }

  /** Hands the socket over: paused, sink `discard`, no listeners of ours; returns the bytes read past the last message. */
  release(): Buffer {
    this.socket.pause();
    this.reader.sink = discard;
    this.socket.removeListener("end", this.onEnd);
    this.socket.removeListener("error", this.onError);
    this.socket.removeListener("close", this.onClose);
    const early = this.pending;
    this.pending = Buffer.alloc(0);
    return early;
  }

  /** Destroys the socket; a `read` waiting on it fails (its failure is then ignored: the chain has finished). */
  destroy(): void {
    this.release();
    this.socket.on("error", discard);
    this.socket.destroy();
    this.gone ??= { text: "cancelled" };
    this.wake?.();
  }

  private readonly onEnd = (): void => {
    this.gone ??= { text: "closed the connection before answering" };
    this.wake?.();
  };
  private readonly onError = (err: NodeJS.ErrnoException): void => {
    this.gone ??= { text: `connection failed before answering: ${err.code ?? err.message}`, ...(err.code === undefined ? {} : { errno: err.code }) };
    this.wake?.();
  };
  private readonly onClose = (): void => {
    this.gone ??= { text: "closed the connection before answering" };
    this.wake?.();
  };
}
