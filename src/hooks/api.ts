/**
 * The socksmith addon contract: what an addon file exports and what each hook receives and may
 * return. Types only; addons import it with `import type { Addon } from "socksmith/addon"` and
 * end with `export default { … } satisfies Addon`. Runtime helpers arrive through each hook's
 * `ctx` argument, never through imports of the host.
 *
 * Dispatch, for every hook:
 * - Addons are called in the order of the `-s` flags. Hooks an addon does not define cost nothing.
 * - Returning `undefined` (or nothing) means "no opinion": the next addon is asked, and if none
 *   has an opinion the engine's default applies.
 * - Decisions (`onOpen`, `onAuth`, `onRequest`, `onTlsClientHello`): the first addon that
 *   decides wins; later addons are not asked. Changes (`onReply`, `onData`, `onDatagram`): each addon sees the output of the
 *   previous one. Observations (`onClose`): every addon is called.
 * - Any hook may be async. While one is pending, only its session waits, and that session's
 *   sockets are not read (real backpressure: a slow hook slows its sender, memory stays bounded).
 * - Calls for one session never overlap, and `onData` calls for one session and direction
 *   arrive in order.
 * - A hook that throws, rejects or exceeds the hook timeout (default 5 s, `--hook-timeout`) is
 *   reported with the addon, the hook, the session and the addon's own file:line; the addon stays
 *   loaded and the session goes on as if the hook had returned `undefined`.
 * - Answers are checked at run time against these types (esbuild strips them): an answer that
 *   is not one of the documented shapes — an unknown field, `{ allow: false }`, `{ deny: "2" }`,
 *   `{ intercept: true, passthrough: true }`, `{ upstream: "socks9://x" }`,
 *   a reply code out of 1–255, a port out of 1–65535, `replace` that is neither bytes nor a
 *   string, `{ rep: 0 }` for a request that failed — is reported like a throw (with the hook's
 *   file:line) and counts as `undefined`. `ctx` helpers given wrong arguments report the same
 *   way and do nothing; they never throw.
 * - Every session that reaches `onOpen` ends with exactly one `onClose`.
 *
 * Fields may be added to these types in later versions; none will be renamed or removed.
 */

/** A value, or a promise of it. */
export type MaybePromise<T> = T | PromiseLike<T>;

/** "up" is client → target, "down" is target → client. */
export type Direction = "up" | "down";

/** SOCKS4, SOCKS4a (SOCKS4 with a hostname) or SOCKS5. */
export type SocksVersion = 4 | "4a" | 5;

export type SocksCommand = "connect" | "bind" | "udp";

/** A host and a port. Hosts are IPv4 text, IPv6 text (no brackets) or a hostname. */
export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

/**
 * A SOCKS5 reply code (RFC 1928 §6): 0 succeeded, 1 general failure, 2 not allowed by ruleset,
 * 3 network unreachable, 4 host unreachable, 5 connection refused, 6 TTL expired (timeout),
 * 7 command not supported, 8 address type not supported. SOCKS4 clients see 90 for 0 and 91 for
 * anything else.
 */
export type ReplyCode = number;

// ---------------------------------------------------------------------------------------------
// The context every hook receives
// ---------------------------------------------------------------------------------------------

/** What is known about the session a hook is called for. */
export interface SessionInfo {
  /** Unique within one run of the proxy. */
  readonly id: number;
  /** The client's address (IPv4-mapped IPv6 addresses already shown as IPv4). */
  readonly client: Endpoint;
  /** The protocol, once the first byte has been read. */
  readonly version?: SocksVersion;
  /** The command, once the request has been read. */
  readonly command?: SocksCommand;
  /** The destination as the client requested it, once the request has been read. */
  readonly target?: Endpoint;
  /** The authenticated user name (RFC 1929) or SOCKS4 USERID. Never the password. */
  readonly user?: string;
  /** Tags set so far by any addon. */
  readonly tags: Readonly<Record<string, string>>;
  /**
   * Set when the session replays a captured one: "server" when `--server-replay` answers it
   * from a recording (known from `onRequest` on), "client" when the proxy's own client replay
   * sent it (the TUI's `r`; known from `onAuth` on, usually from `onOpen`). `of` is the recorded session's id in its
   * capture file. A `socksmith replay --via` from another process looks like any client.
   */
  readonly replay?: { readonly kind: "client" | "server"; readonly of: number };
  /**
   * Set for a CONNECT tunnel that began with a TLS ClientHello while `--tls` is on, once socksmith
   * decided what to do with it (after `onTlsClientHello`, before the first `onData`); undefined for
   * every other session. See `TlsSessionInfo`.
   */
  readonly tls?: TlsSessionInfo;
}

/**
 * `ctx.session.tls`. `intercepted: true`: socksmith finished both handshakes, so `onData` sees
 * (and may change) the plaintext and `version`, `cipher` and `alpn` are what the client negotiated
 * with socksmith (the upstream side negotiates the same ALPN). `intercepted: false`: the tunnel
 * relays the ciphertext untouched (a passthrough); only `sni` is known then. When a handshake
 * fails the session ends without any `onData`, and `onClose` sees no `version` or `cipher`.
 */
export interface TlsSessionInfo {
  /** The server name the client sent (SNI); absent when it sent none. */
  readonly sni?: string;
  /** The negotiated ALPN protocol ("h2", "http/1.1", …); absent when none was or when not intercepted. */
  readonly alpn?: string;
  /** "TLSv1.3", "TLSv1.2", …; absent when not intercepted. */
  readonly version?: string;
  /** The cipher suite's standard name, e.g. "TLS_AES_128_GCM_SHA256"; absent when not intercepted. */
  readonly cipher?: string;
  readonly intercepted: boolean;
}

/** The second argument of every session hook. */
export interface HookContext<Options = Record<string, unknown>> {
  readonly session: SessionInfo;
  /** Tags the session (stored with it, shown in the UI, filterable as `tag:key=value`). */
  tag(key: string, value: string): void;
  /** Writes a line to the session's log (stored and shown with the session). */
  log(message: string): void;
  /**
   * Sends bytes toward the target ("up") or the client ("down"), in order with the relayed
   * bytes. Called from `onRequest` or `onReply`, the bytes wait and follow a success reply: how
   * a served session speaks first (a banner); they are forgotten if the request fails. Ignored
   * once the session ended.
   */
  inject(direction: Direction, data: Uint8Array | string): void;
  /**
   * UDP ASSOCIATE sessions: sends a datagram to the client as if `peer` had sent it (answer a
   * DNS query locally, say). Ignored before the client's first datagram and without an
   * association.
   */
  injectDatagram(peer: Endpoint, data: Uint8Array | string): void;
  /** This addon's options: declared defaults, overridden by `--set ADDON.OPTION=VALUE`. */
  readonly options: Readonly<Options>;
  /** True when the session is a replay of a captured one (`session.replay` says which kind). */
  readonly replayed: boolean;
  /**
   * Message-level rewriting in `onData`, exact however the bytes were cut into reads: buffers
   * this direction until a message is complete (see `Framing`), hands each complete message to
   * `edit`, and returns the verdict to return from `onData`: `{ replace }` with the edited
   * messages (empty while one is incomplete), or `undefined` when the chunk goes on as it came.
   * `edit` answers synchronously (`MessageEdit`); a message it is given may be kept. State is per
   * session, addon and direction, made on first call; bytes of a message still incomplete when
   * its direction ends are not sent.
   *
   *   onData: (chunk, ctx) => ctx.messages(chunk, { delimiter: "\r\n\r\n" }, (head) =>
   *     Buffer.from(head.toString("latin1").replace(/^User-Agent:.*$/im, "User-Agent: socksmith"), "latin1")),
   */
  messages(chunk: DataChunk, framing: Framing | (() => Framing), edit: (message: Buffer) => MessageEdit): DataVerdict | undefined;
}

/**
 * How `ctx.messages` cuts a direction into messages (a function returning one is asked before
 * each message, so it may depend on what earlier edits saw):
 * - `delimiter`: a message ends with this byte sequence, included (HTTP/1 headers: "\r\n\r\n").
 *   A string is UTF-8.
 * - `length`: every message is this many bytes.
 * - `measure`: given the buffered bytes from the start of the next message, returns its length
 *   once they tell it (it may be more than it was given), or undefined to wait for more. It must
 *   answer the same for any longer input.
 * `max` (default 65,536) bounds the bytes of one message held: a longer message of known length
 * passes unedited without being held; a delimited one passes unedited up to its delimiter; a
 * `measure` that cannot tell within `max` bytes ends the rewriting of that direction (everything
 * passes). Each is said once through `ctx.log`.
 */
export type Framing = (
  | { readonly delimiter: Uint8Array | string }
  | { readonly length: number }
  | { readonly measure: (buffered: Uint8Array) => number | undefined }
) & { readonly max?: number };

/**
 * An edit's answer for one message: bytes or a string (UTF-8) to send instead (empty: nothing),
 * `undefined` to send it unchanged, or `{ replace?, pass? }` where `pass` bytes after the message
 * go on untouched, not held and not framed (an HTTP body of Content-Length bytes; `Infinity`
 * for the rest of the direction). An edit that throws, or answers anything else, is reported
 * like a failing hook and its message goes on unedited.
 */
export type MessageEdit = Uint8Array | string | undefined | void | { readonly replace?: Uint8Array | string; readonly pass?: number };

/** The argument of `onLoad`. */
export interface LoadContext<Options = Record<string, unknown>> {
  readonly options: Readonly<Options>;
  /** Writes a line to the proxy's log. */
  log(message: string): void;
}

// ---------------------------------------------------------------------------------------------
// Hook payloads
// ---------------------------------------------------------------------------------------------

/** A client connected; no byte has been read. */
export interface OpenInfo {
  readonly client: Endpoint;
  /** The proxy address it connected to. */
  readonly local: Endpoint;
}

/**
 * One authentication step. User names and passwords are octets on the wire; here they are
 * latin1 text (one character per byte), so they compare exactly.
 * - `none`: a SOCKS5 client that will use no authentication.
 * - `userpass`: RFC 1929 credentials.
 * - `socks4`: the USERID of a SOCKS4/4a request (SOCKS4 has no password).
 */
export type AuthInfo =
  | { readonly method: "none"; readonly offered: readonly number[] }
  | { readonly method: "userpass"; readonly offered: readonly number[]; readonly user: string; readonly password: string }
  | { readonly method: "socks4"; readonly user: string };

/** A parsed request, before anything is dialled. */
export interface RequestInfo {
  readonly command: SocksCommand;
  /** The destination host exactly as the client sent it. */
  readonly host: string;
  readonly port: number;
  /** How the client wrote the host: SOCKS5 ATYP, or SOCKS4 (ipv4) / SOCKS4a (domain). */
  readonly addressType: "ipv4" | "ipv6" | "domain";
  readonly version: SocksVersion;
  readonly user?: string;
  readonly client: Endpoint;
}

/**
 * A reply about to be sent. For a request that went through upstream proxies (`run --upstream`,
 * `--route`, an `{ upstream }` answer), `bound` is what the last hop reported.
 */
export interface ReplyInfo {
  readonly command: SocksCommand;
  /** Which reply: the only one, BIND's first or second, or UDP ASSOCIATE's. */
  readonly stage: "final" | "bind-first" | "bind-second" | "udp";
  readonly rep: ReplyCode;
  /** BND.ADDR / BND.PORT: socksmith's own, or, through upstream proxies, the last hop's. */
  readonly bound: Endpoint;
  /** Why it failed (a stable code such as "CONNECTION_REFUSED"), when rep != 0. */
  readonly code?: string;
  /** The OS error behind a connect failure (ECONNREFUSED, ENOTFOUND, …). */
  readonly errno?: string;
}

/**
 * The ClientHello a CONNECT tunnel began with (only with `--tls`). An intercepted tunnel's `onData`
 * chunks are then the plaintext inside the TLS connection; a passed-through one's are TLS records,
 * as without `--tls`.
 */
export interface TlsClientHello {
  /** The server name the client asked for (SNI); absent when it sent none (a client dialling an IP). */
  readonly sni?: string;
  /** ALPN protocols offered, in the client's order ("h2", "http/1.1", …); empty without the extension. */
  readonly alpn: readonly string[];
  /** TLS versions offered, highest first ("TLSv1.3", "TLSv1.2", …). */
  readonly versions: readonly string[];
  /** The destination as the client requested it (the same as `ctx.session.target`). */
  readonly target: Endpoint;
}

/** Relayed bytes, as read from one side. */
export interface DataChunk {
  readonly direction: Direction;
  readonly data: Uint8Array;
  /** Per-session sequence number over both directions, from 0; bytes injected by hooks take numbers too, so gaps are possible. */
  readonly seq: number;
}

/** One UDP datagram of an association, without its SOCKS header. */
export interface Datagram {
  /** "up": client → remote; "down": remote → client. */
  readonly direction: Direction;
  /** The remote: where an "up" datagram goes, where a "down" one came from. */
  readonly peer: Endpoint;
  readonly data: Uint8Array;
  readonly seq: number;
}

/** How a session ended. */
export interface CloseSummary {
  /** "completed", "client-reset", "target-reset", "idle-timeout", "request-failed", … */
  readonly reason: string;
  readonly errno?: string;
  /** Bytes read from the client / from the target. */
  readonly bytesUp: number;
  readonly bytesDown: number;
  readonly durationMs: number;
}

// ---------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------

/** `onOpen`: close the connection before any byte is read. */
export type OpenDecision = { readonly reject: true };

/**
 * `onAuth`: an addon narrows who gets in, never widens it.
 * - `reject`: refused, even with credentials `--auth` accepts.
 * - `accept`: this addon lets the client in, so later addons are not asked; the credentials
 *   `--auth` configures must still match (without `--auth`, everyone matches).
 * A SOCKS5 client that offered both no-auth and username/password, and whose no-auth attempt
 * is rejected, is asked for credentials: `onAuth` is called again with `method: "userpass"`.
 */
export type AuthDecision = { readonly accept: true } | { readonly reject: true };

/**
 * `onRequest`:
 * - `allow`: dial the destination (skips later addons).
 * - `deny`: answer with this reply code and close.
 * - `redirect`: dial another host and/or port; the client still sees its own request succeed.
 * - `serve` (CONNECT only): answer success without dialling anything. The session has no
 *   upstream: the client's bytes reach `onData` (direction "up") and nowhere else, and the addon
 *   writes the server's side with `ctx.inject("down", …)`; `{ close: true }` ends it.
 * - `upstream`: allow the request, through these upstream proxies instead of the route
 *   `run --upstream` / `--route` would give it (see `UpstreamAnswer`).
 */
export type RequestDecision =
  | { readonly allow: true }
  | { readonly deny: ReplyCode }
  | { readonly redirect: { readonly host?: string; readonly port?: number } }
  | { readonly serve: true }
  | { readonly upstream: UpstreamAnswer };

/**
 * The route of an `{ upstream }` answer to `onRequest`; the request is allowed and goes:
 * - `"socks5h://host:1080"`: through that one proxy;
 * - `["socks5://a:1080", "http://b:3128"]`: through a chain, in order (socksmith connects to the
 *   first, which connects to the second, which connects to the target); 1 to 8 hops;
 * - `"direct"` or `[]`: through no proxy, even when `--upstream` / `--route` would use one.
 * URLs are those of `run --upstream`: `socks5h://`, `socks5://`, `socks4a://`, `socks4://` or
 * `http://` (HTTP CONNECT), `[user[:pass]@]host[:port]` (port 1080 by default for SOCKS; an http
 * upstream names its port), the user and password percent-encoded. An answer whose URL does not
 * parse is invalid (reported with the reason, counts as `undefined`). Like every decision, the
 * first addon that answers wins. The route overrules `--upstream` and `--route` for this request
 * only; it is recorded with the session (the hops as `scheme://host:port`: credentials are never
 * recorded, logged or shown). A route that cannot carry the command (BIND through an http last
 * hop, UDP ASSOCIATE through anything but one socks5/socks5h hop) makes the request fail with
 * REP 7 and the reason recorded; a hop that is down or refuses fails it as `run --upstream` does.
 */
export type UpstreamAnswer = string | readonly string[] | "direct";

/**
 * `onTlsClientHello`:
 * - `intercept`: socksmith completes the TLS handshake with the target and answers the client with
 *   a certificate from its CA, so `onData`, the capture and replay see the plaintext.
 * - `passthrough`: the tunnel relays the TLS bytes untouched, as without `--tls`.
 * A decision overrules socksmith's own choice; without one that choice stands: `--tls-hosts` /
 * `--tls-passthrough`, passthrough for a host whose client rejected the CA earlier in the run, and
 * otherwise interception.
 */
export type TlsClientHelloDecision = { readonly intercept: true } | { readonly passthrough: true };

/** `onReply`: a different reply code and/or bound address. */
export type ReplyChange = { readonly rep?: ReplyCode; readonly bound?: Endpoint };

/**
 * `onData`: send other bytes (empty = nothing), send nothing, end both sides gracefully (FIN),
 * or abort both (RST). To delay a chunk, return a promise that resolves later.
 */
export type DataVerdict = { readonly replace: Uint8Array | string } | { readonly drop: true } | { readonly close: true } | { readonly reset: true };

/** `onDatagram`: other bytes, nothing, or ("up" only) another destination. */
export type DatagramVerdict =
  | { readonly replace: Uint8Array | string }
  | { readonly drop: true }
  | { readonly redirect: { readonly host?: string; readonly port?: number } };

// ---------------------------------------------------------------------------------------------
// The addon
// ---------------------------------------------------------------------------------------------

/** A declared option; set on the command line with `--set ADDON.OPTION=VALUE`. */
export type OptionSpec =
  | { readonly type: "string"; readonly default?: string; readonly description?: string }
  | { readonly type: "number"; readonly default?: number; readonly description?: string }
  | { readonly type: "boolean"; readonly default?: boolean; readonly description?: string };

/** A hook's answer: a decision, or nothing for "no opinion". */
type Answer<T> = MaybePromise<T | undefined | void>;

/** What an addon file's default export is. Every member is optional. */
export interface Addon<Options extends Record<string, unknown> = Record<string, unknown>> {
  /** Shown in logs and used by `--set`; defaults to the file name without extension. */
  readonly name?: string;
  /** Declared options with their types and defaults. */
  readonly options?: { readonly [K in keyof Options]: OptionSpec };
  /** Called once when this version of the addon is loaded (also after each reload). */
  onLoad?(ctx: LoadContext<Options>): MaybePromise<void>;
  /** Called once when this version is replaced by a reload or the proxy stops. */
  onDispose?(): MaybePromise<void>;
  /** A client connected. Decision: first addon that decides wins. */
  onOpen?(info: OpenInfo, ctx: HookContext<Options>): Answer<OpenDecision>;
  /**
   * A method offer or credentials (possibly twice in one session: `none`, then `userpass`).
   * Decision that can only narrow `--auth` (see AuthDecision); without one, `--auth` decides.
   */
  onAuth?(attempt: AuthInfo, ctx: HookContext<Options>): Answer<AuthDecision>;
  /** A CONNECT, BIND or UDP ASSOCIATE request. Decision; without one, it is allowed. */
  onRequest?(request: RequestInfo, ctx: HookContext<Options>): Answer<RequestDecision>;
  /** A reply about to be sent. Change: each addon sees the previous one's result. */
  onReply?(reply: ReplyInfo, ctx: HookContext<Options>): Answer<ReplyChange>;
  /**
   * With `--tls` only: a CONNECT tunnel's first client bytes are a TLS ClientHello. Called once per
   * such session, after `onRequest` and `onReply` (the success reply has been sent) and before any
   * `onData`; `ctx.session.tls` is not set yet. Decision: first addon that decides wins.
   */
  onTlsClientHello?(hello: TlsClientHello, ctx: HookContext<Options>): Answer<TlsClientHelloDecision>;
  /** Each relayed chunk, each direction. Change: each addon sees the previous one's output. */
  onData?(chunk: DataChunk, ctx: HookContext<Options>): Answer<DataVerdict>;
  /** Each UDP datagram, each direction. Change, like onData. */
  onDatagram?(datagram: Datagram, ctx: HookContext<Options>): Answer<DatagramVerdict>;
  /** The session ended. Observation: every addon is called. */
  onClose?(summary: CloseSummary, ctx: HookContext<Options>): MaybePromise<void>;
}

/** The hook names, for validation and "did you mean" messages. */
export type HookName = Exclude<keyof Addon, "name" | "options">;
