/**
 * What the engine needs from outside (docs/architecture.md, "Ports"). The engine asks a HookRunner at every
 * decision point and tells an EngineObserver every fact; both have defaults (allow everything,
 * observe nothing), so the engine runs alone. The hooks runtime implements HookRunner; the store's
 * recorder and the CLI's session log implement EngineObserver.
 *
 * Invariants the engine keeps:
 * - Every session starts with exactly one `sessionOpened` and ends with exactly one
 *   `sessionClosed`; every other fact about it comes between the two.
 * - Hook calls for one session never overlap: the engine waits for each answer (sync or async)
 *   before it asks the next question, and while it waits it stops reading that session's sockets.
 * - `data` calls for one session and direction arrive in order, one at a time.
 * - A hook that throws or rejects is a bug of the runner: the engine treats it as "no opinion"
 *   and reports it through the logger. Runners are expected to isolate addons themselves.
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import type { Direction, Endpoint, SessionId, SocksAddress, SocksCommand, SocksVersion } from "./types.js";
import type { ProtocolErrorCode } from "./errors.js";
import type { TlsFact, TlsHelloDecision, TlsHelloInfo } from "./tls-ports.js";
import type { Route } from "./upstream.js";

/** A value or a promise of it: hooks may answer synchronously (fast path) or asynchronously. */
export type MaybePromise<T> = T | PromiseLike<T>;

export type { SessionId } from "./types.js";

// ---------------------------------------------------------------------------------------------
// Hook payloads and decisions
// ---------------------------------------------------------------------------------------------

/** A client has connected; no byte has been read yet. */
export interface ConnectionInfo {
  readonly id: SessionId;
  /** The client's address (IPv4-mapped addresses normalised). */
  readonly client: Endpoint;
  /** The proxy address the client connected to. */
  readonly local: Endpoint;
}

/** `{ reject: true }` closes the connection before any byte is read; undefined lets it in. */
export type OpenDecision = { readonly reject: true } | undefined;

/**
 * One authentication step.
 * - `none`: a SOCKS5 client that will use no authentication (method 0x00 was chosen).
 * - `userpass`: RFC 1929 credentials, as octets.
 * - `socks4`: the USERID of a SOCKS4/4a request (SOCKS4 has no password).
 */
export type AuthAttempt =
  | { readonly method: "none"; readonly offered: readonly number[] }
  | { readonly method: "userpass"; readonly offered: readonly number[]; readonly user: Buffer; readonly password: Buffer }
  | { readonly method: "socks4"; readonly userid: Buffer };

/** `accept` or `reject` decide; undefined leaves it to the engine's credential policy. */
export type AuthDecision = { readonly accept: true } | { readonly reject: true } | undefined;

/** A parsed request, before any dial. */
export interface RequestInfo {
  readonly id: SessionId;
  readonly version: SocksVersion;
  readonly command: SocksCommand;
  /** The destination exactly as the client sent it. */
  readonly destination: SocksAddress;
  /** The authenticated user (RFC 1929 name or SOCKS4 USERID), latin1; absent without one. */
  readonly user?: string;
  readonly client: Endpoint;
}

/**
 * What to do with a request. undefined or `{ allow: true }` dials the destination;
 * `{ deny: code }` answers with that failure (code: a ProtocolErrorCode or a raw SOCKS5 REP);
 * `{ redirect }` dials another host and/or port instead.
 */
export type RequestDecision =
  | { readonly allow: true }
  | { readonly deny: ProtocolErrorCode | number }
  | { readonly redirect: { readonly host?: string; readonly port?: number } }
  /**
   * CONNECT only: reply success without dialling anything. The session has no upstream: client
   * bytes go to the data hook only, and the hook answers with `inject("down", …)`.
   */
  | { readonly serve: true }
  /**
   * Dial through these upstream proxies, in order (empty: direct), instead of the route the engine
   * would choose (`EngineOptions.route`). The request is allowed otherwise.
   */
  | { readonly upstream: Route }
  | undefined;

/** The reply the engine is about to send for a request. */
export interface ReplyInfo {
  readonly id: SessionId;
  readonly version: SocksVersion;
  readonly command: SocksCommand;
  /** Which reply: the only one (CONNECT), BIND's first or second, or UDP ASSOCIATE's. */
  readonly stage: "final" | "bind-first" | "bind-second" | "udp";
  /** SOCKS5 REP (SOCKS4 replies are derived: 0 → 90, anything else → 91). */
  readonly rep: number;
  /** The failure's code when rep != 0. */
  readonly code?: ProtocolErrorCode;
  /** The OS error code behind a connect failure (ECONNREFUSED, ENOTFOUND, …). */
  readonly errno?: string;
  /** BND.ADDR / BND.PORT. */
  readonly bound: Endpoint;
}

/** Changes to a reply: a different REP, or a different bound address. undefined keeps it. */
export type ReplyChange = { readonly rep?: number; readonly bound?: Endpoint } | undefined;

/** One chunk of relayed bytes, as read from its source. */
export interface DataChunk {
  readonly id: SessionId;
  readonly direction: Direction;
  /**
   * Per-session sequence number across both directions, from 0. Injected bytes take a number
   * too (they are facts of their own), so a hook may see gaps.
   */
  readonly seq: number;
  readonly data: Buffer;
}

/**
 * What to do with a chunk: undefined passes it unchanged; `replace` sends other bytes (empty =
 * nothing); `drop` sends nothing; `close` ends both sides gracefully; `reset` aborts both (RST).
 */
export type DataVerdict = { readonly replace: Uint8Array } | { readonly drop: true } | { readonly close: true } | { readonly reset: true } | undefined;

/** One UDP datagram of an association, after the SOCKS header was removed. */
export interface DatagramInfo {
  /** The session whose UDP ASSOCIATE created the association. */
  readonly id: SessionId;
  /** "up": client → remote peer; "down": remote peer → client. */
  readonly direction: Direction;
  /** Per-association sequence number across both directions, from 0. */
  readonly seq: number;
  /** The remote peer: where an "up" datagram goes (as the client wrote it), where a "down" one came from. */
  readonly peer: SocksAddress;
  readonly data: Buffer;
}

/**
 * What to do with a datagram: undefined relays it unchanged; `replace` relays other bytes;
 * `drop` relays nothing; `redirect` ("up" only) sends it to another host and/or port.
 */
export type DatagramVerdict =
  | { readonly replace: Uint8Array }
  | { readonly drop: true }
  | { readonly redirect: { readonly host?: string; readonly port?: number }; readonly replace?: Uint8Array }
  | undefined;

/** How a session ended. */
export type CloseReason =
  /** Both directions finished normally (FIN both ways). */
  | "completed"
  /** The client sent a reset or a socket error. */
  | "client-reset"
  | "client-error"
  /** The target sent a reset or a socket error. */
  | "target-reset"
  | "target-error"
  /** The client closed before finishing the handshake. */
  | "client-closed"
  /** The handshake did not finish within the handshake timeout. */
  | "handshake-timeout"
  /** No byte in either direction within the idle timeout. */
  | "idle-timeout"
  /** Bytes that are not SOCKS, or a malformed message. */
  | "protocol-error"
  /** No acceptable method, or credentials rejected. */
  | "auth-failed"
  /** An `onOpen` hook rejected the connection. */
  | "rejected"
  /** The request got a failure reply (denied, or the connect failed). */
  | "request-failed"
  /** `--max-sessions` was reached. */
  | "session-limit"
  /** A hook asked to close or reset. */
  | "closed-by-hook"
  /** The proxy shut down. */
  | "shutdown"
  /** TLS interception: a handshake failed (the session's TLS fact says which side and why). */
  | "tls-failed";

/** The control a hook gets over its session. */
export interface SessionHandle {
  readonly id: SessionId;
  /**
   * Writes bytes toward the target ("up") or the client ("down"). Called while the request or
   * reply is being decided, the bytes wait and follow a success reply (the way a served session
   * greets first); they are forgotten if the request fails. Ignored once the session ended.
   */
  inject(direction: Direction, data: Uint8Array): void;
  /**
   * Sends a datagram to the client of this session's UDP association, as if `peer` had sent
   * it (the SOCKS header names `peer`). Ignored when the session has no association.
   */
  injectDatagram(peer: Endpoint, data: Uint8Array): void;
  /** Ends the session: gracefully, or with a reset. */
  close(mode?: "graceful" | "reset"): void;
  /**
   * Pacing for long injections: undefined when bytes injected toward `direction` can go now;
   * else a promise that settles once that direction no longer waits for its destination's drain
   * or for the capture (the direction's one wait state, tcp-relay.ts), or the session has ended. An injector that writes a chunk
   * at a time and awaits this in between holds a chunk and the socket's buffer, not its whole
   * answer. Optional: a handle without it does not pace (undefined before the relay starts).
   */
  writable?(direction: Direction): PromiseLike<void> | undefined;
}

/**
 * The decision points. Every method may answer synchronously or with a promise; undefined is
 * "no opinion" and the engine's default applies.
 */
export interface HookRunner {
  open(conn: ConnectionInfo, session: SessionHandle): MaybePromise<OpenDecision>;
  auth(attempt: AuthAttempt, conn: ConnectionInfo, session: SessionHandle): MaybePromise<AuthDecision>;
  request(request: RequestInfo, session: SessionHandle): MaybePromise<RequestDecision>;
  reply(reply: ReplyInfo, session: SessionHandle): MaybePromise<ReplyChange>;
  /**
   * Whether `data` must see every chunk of a session whose relay starts now. false keeps the
   * fast relay path (no per-chunk call). Asked once per session when its relay starts.
   */
  wantsData(): boolean;
  data(chunk: DataChunk, session: SessionHandle): MaybePromise<DataVerdict>;
  /** Whether `datagram` must see every datagram of an association that starts now. */
  wantsDatagrams(): boolean;
  datagram(datagram: DatagramInfo, session: SessionHandle): MaybePromise<DatagramVerdict>;
  /**
   * With TLS interception on (`EngineOptions.tls`): a CONNECT tunnel began with a ClientHello;
   * `{ intercept: true }` / `{ passthrough: true }` overrule the interceptor's choice, undefined
   * keeps it. Optional: a runner without it never overrules.
   */
  tlsClientHello?(hello: TlsHelloInfo, session: SessionHandle): MaybePromise<TlsHelloDecision>;
}

// ---------------------------------------------------------------------------------------------
// Facts
// ---------------------------------------------------------------------------------------------

export interface SessionOpenedFact extends ConnectionInfo {
  /** Milliseconds since the epoch (from the Clock). */
  readonly at: number;
}

export interface AuthFact {
  readonly id: SessionId;
  readonly version: SocksVersion;
  /** SOCKS5 methods offered, in the client's order (empty for SOCKS4). */
  readonly offered: readonly number[];
  /** The method chosen (0xFF when none was acceptable); undefined for SOCKS4. */
  readonly method?: number;
  /** The user name (latin1) or SOCKS4 USERID; never the password. */
  readonly user?: string;
  readonly accepted: boolean;
}

export interface RequestFact extends RequestInfo {
  readonly at: number;
}

export interface ReplyFact extends ReplyInfo {
  readonly at: number;
  /** Where the engine dialled (after redirects); absent when it never dialled. */
  readonly target?: Endpoint;
  /** The address the upstream socket connected to (resolved). */
  readonly remote?: Endpoint;
  /**
   * The addresses tried: with how each failed when the dial failed; in order, the last being
   * the winner, when happy eyeballs raced several and one succeeded.
   */
  readonly attempts?: readonly string[];
  /**
   * The upstream proxies the request went through (or tried), in order, as `scheme://host:port`
   * without credentials; absent when it went direct.
   */
  readonly route?: readonly string[];
}

export interface ChunkFact {
  readonly id: SessionId;
  readonly direction: Direction;
  readonly seq: number;
  readonly at: number;
  /**
   * Bytes as received from the source. Valid during the call only: without a data hook the
   * engine relays from a reused read buffer, so an observer that keeps the bytes copies them.
   */
  readonly received: Buffer;
  /** Bytes as sent when a hook changed them (empty when dropped); absent when unchanged. */
  readonly sent?: Uint8Array;
  /** What the data hook decided, when it changed the chunk; absent when it passed unchanged. */
  readonly verdict?: ChunkVerdict;
}

/** A data hook's decision on a chunk, as facts report it. */
export type ChunkVerdict =
  | "replace"
  | "drop"
  | "close"
  | "reset"
  /** Bytes a hook injected: `received` is empty and `sent` holds them. */
  | "inject";

/** Why a datagram was not relayed. */
export type DatagramDropReason =
  /** From an IP other than the TCP client's (RFC 1928 §7 MUST). */
  | "foreign-source-ip"
  /** From the client's IP but not the port it announced or first used. */
  | "foreign-source-port"
  /** RSV != 0, or shorter than its header. */
  | "bad-header"
  /** Unknown ATYP. */
  | "bad-address-type"
  /** FRAG != 0: fragmentation is not implemented. */
  | "fragmented"
  /** The destination name did not resolve. */
  | "dns-failed"
  /** Port 0, an unspecified address or a malformed name. */
  | "bad-destination"
  /** From a remote host the client never sent to (address-dependent filtering). */
  | "unsolicited"
  /** Too large to re-encapsulate for the client (EMSGSIZE). */
  | "too-large"
  /** More distinct destinations than the association allows. */
  | "peer-limit"
  /** Too many datagrams (or bytes) of the association already wait for a hook or a name lookup. */
  | "backlog"
  /** A hook dropped it. */
  | "hook"
  /** Its destination (the name, or the address it resolved to) is refused by a `--deny` rule. */
  | "denied"
  /** The send failed (errno in `detail`). */
  | "send-failed";

export interface DatagramFact {
  readonly id: SessionId;
  readonly direction: Direction;
  readonly seq: number;
  readonly at: number;
  /** The remote peer (see DatagramInfo.peer); absent when the header could not be read. */
  readonly peer?: SocksAddress;
  /** The address the datagram came from on the wire (client or remote). */
  readonly from: Endpoint;
  /** Payload as received (without the SOCKS header for "up"). */
  readonly received: Buffer;
  /** Payload as sent when a hook changed it; absent when unchanged. */
  readonly sent?: Uint8Array;
  /** Where it went, after resolution and redirects; absent when dropped. */
  readonly to?: Endpoint;
  /** "injected": a hook wrote it to the client (`from` is the peer it claims to come from). */
  readonly verdict: "relayed" | "dropped" | "injected";
  readonly reason?: DatagramDropReason;
  readonly detail?: string;
}

/** Something out of spec that the engine tolerated or rejected, e.g. RSV != 0. */
export interface AnomalyFact {
  readonly id: SessionId;
  readonly at: number;
  readonly code: string;
  readonly detail: string;
}

export interface SessionClosedFact {
  readonly id: SessionId;
  readonly at: number;
  readonly reason: CloseReason;
  /** The socket error's code, when an error ended it. */
  readonly errno?: string;
  /** Bytes read from the client after the handshake / written to the target. */
  readonly bytesUpReceived: number;
  readonly bytesUpSent: number;
  /** Bytes read from the target / written to the client. */
  readonly bytesDownReceived: number;
  readonly bytesDownSent: number;
}

/**
 * Receives every fact, in order per session. Methods return quickly; `chunk` may return a
 * promise to slow the relay down (the engine stops reading that direction until it settles),
 * which is how a recorder that falls behind applies backpressure instead of dropping data.
 */
export interface EngineObserver {
  sessionOpened(fact: SessionOpenedFact): void;
  authenticated(fact: AuthFact): void;
  requested(fact: RequestFact): void;
  replied(fact: ReplyFact): void;
  anomaly(fact: AnomalyFact): void;
  /** Optional: when absent, relays skip building chunk facts (the fast path). */
  chunk?(fact: ChunkFact): void | PromiseLike<void>;
  /** Optional: every datagram of a UDP association, relayed or dropped. */
  datagram?(fact: DatagramFact): void;
  /** Optional: once per tunnel that began with a ClientHello (TLS interception on), before its relay starts. */
  tls?(fact: TlsFact): void;
  sessionClosed(fact: SessionClosedFact): void;
}

/** A pending timer of a Clock. */
export interface ClockTimer {
  /** Lets the process exit while only this timer is pending (Node's `Timeout.unref`). */
  unref(): void;
}

/**
 * Time, for the facts' timestamps and for every engine timer (handshake, connect, BIND, idle,
 * UDP idle, linger after a failure, stop's grace period), so a test can move time by hand.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `callback` once, `ms` milliseconds from now. */
  setTimeout(callback: () => void, ms: number): ClockTimer;
  /** Cancels a timer of this clock; undefined or a timer that has fired is ignored. */
  clearTimeout(timer: ClockTimer | undefined): void;
}

/**
 * Resolves a destination name to its addresses, like `dns.lookup(name, { all: true })`: the dialer
 * races them, a UDP association sends to the first. An error's `code` (ENOTFOUND, EAI_AGAIN) is the
 * errno the session reports, and `addresses` is not read then. Injectable so tests decide what a name resolves to.
 */
export type Lookup = (name: string, callback: (err: NodeJS.ErrnoException | null, addresses: readonly LookupAddress[]) => void) => void;

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
}

// ---------------------------------------------------------------------------------------------
// Defaults
// ---------------------------------------------------------------------------------------------

/** Allows everything and never asks for chunks. */
export const allowAllHooks: HookRunner = {
  open: () => undefined,
  auth: () => undefined,
  request: () => undefined,
  reply: () => undefined,
  wantsData: () => false,
  data: () => undefined,
  wantsDatagrams: () => false,
  datagram: () => undefined,
};

/** Observes nothing. */
export const noopObserver: EngineObserver = {
  sessionOpened() {},
  authenticated() {},
  requested() {},
  replied() {},
  anomaly() {},
  sessionClosed() {},
};

/** Date.now and Node's timers: a ClockTimer is Node's own Timeout (nothing allocated besides it). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
};

/** The system resolver (getaddrinfo through libuv's thread pool). */
export const systemLookup: Lookup = (name, callback) => dnsLookup(name, { all: true }, callback);

export const silentLogger: Logger = { log() {} };

/** Sends every fact to each observer in turn; `chunk` waits for all that return a promise. */
export function combineObservers(observers: readonly EngineObserver[]): EngineObserver {
  if (observers.length === 1) return observers[0]!;
  const chunkers = observers.filter((o) => o.chunk !== undefined);
  const combined: EngineObserver = {
    sessionOpened: (f) => observers.forEach((o) => o.sessionOpened(f)),
    authenticated: (f) => observers.forEach((o) => o.authenticated(f)),
    requested: (f) => observers.forEach((o) => o.requested(f)),
    replied: (f) => observers.forEach((o) => o.replied(f)),
    anomaly: (f) => observers.forEach((o) => o.anomaly(f)),
    sessionClosed: (f) => observers.forEach((o) => o.sessionClosed(f)),
  };
  const datagrammers = observers.filter((o) => o.datagram !== undefined);
  const tlsObservers = observers.filter((o) => o.tls !== undefined);
  if (tlsObservers.length > 0) combined.tls = (f) => tlsObservers.forEach((o) => o.tls!(f));
  if (datagrammers.length > 0) combined.datagram = (f) => datagrammers.forEach((o) => o.datagram!(f));
  if (chunkers.length > 0) {
    combined.chunk = (f) => {
      let waits: PromiseLike<void>[] | undefined;
      for (const o of chunkers) {
        const r = o.chunk!(f);
        if (r !== undefined) (waits ??= []).push(r);
      }
      return waits === undefined ? undefined : Promise.all(waits).then(() => undefined);
    };
  }
  return combined;
}
