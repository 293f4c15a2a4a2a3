/**
 * The capture's data model: the row types of the capture file's tables, as the store writes and
 * reads them. Types only, in a module of its own so that every part that handles rows (the
 * store, the filter language, the formatters, the TUI, export) imports them from below, and the
 * store can depend on the filter compiler without a cycle. Table definitions and migrations stay
 * in store/schema.ts.
 *
 * Conventions: times (`*_at`) are milliseconds since the Unix epoch; directions are 'up' (client
 * → target) and 'down' (target → client); payload is byte for byte as stored; passwords never.
 */
/** Session status, as the filter language's `status:` names it. */
export type SessionStatus =
  /** Still open (or the recorder has not seen it close yet). */
  | "open"
  /** The request succeeded (reply 0) and the session has ended, however it ended. */
  | "ok"
  /** Refused by policy: authentication, a rule or an addon (reply 2), onOpen, the session limit. */
  | "denied"
  /** Anything else that ended without a success reply: connect errors, protocol errors, timeouts. */
  | "failed"
  /** The process that recorded it stopped (crash, kill -9) while the session was open. */
  | "interrupted";

/** How a chunk or datagram was treated by the hooks; null means passed unchanged. */
export type StoredVerdict = "replace" | "drop" | "close" | "reset" | "inject";

/** One row of `sessions`, as the reader returns it. */
export interface SessionRow {
  /** Unique in the file (engine session ids restart with each run; this does not). */
  readonly id: number;
  /** The run (process) that recorded it: `runs.id`. */
  readonly run_id: number;
  /** The engine's session number in that run: the `#N` of the session log. */
  readonly engine_id: number;
  readonly opened_at: number;
  readonly client_host: string;
  readonly client_port: number;
  readonly local_host: string;
  readonly local_port: number;
  /** '4', '4a' or '5'; null until a request (or a greeting) was read. */
  readonly version: "4" | "4a" | "5" | null;
  /** 'connect', 'bind' or 'udp'; null until a request was read. */
  readonly command: "connect" | "bind" | "udp" | null;
  /** 'none', 'userpass', 'socks4' (USERID only), or 'no-acceptable' when no offered method fit. */
  readonly auth_method: string | null;
  /** The SOCKS5 methods the client offered, as a JSON array of numbers. */
  readonly auth_offered: string | null;
  readonly user: string | null;
  /** The destination as the client wrote it: 'ipv4' | 'ipv6' | 'domain'. */
  readonly requested_type: string | null;
  readonly requested_host: string | null;
  readonly requested_port: number | null;
  readonly requested_at: number | null;
  /** Where the proxy dialled, after addon redirects; null when it never dialled. */
  readonly target_host: string | null;
  readonly target_port: number | null;
  /** The resolved address the upstream socket connected to. */
  readonly remote_host: string | null;
  readonly remote_port: number | null;
  /** BND.ADDR / BND.PORT of the (last) reply. */
  readonly bound_host: string | null;
  readonly bound_port: number | null;
  /** SOCKS5 REP of the (last) reply; null before any reply. SOCKS4 replies are stored as their REP. */
  readonly reply: number | null;
  /** The engine's ProtocolErrorCode when the reply was a failure. */
  readonly reply_code: string | null;
  /** The OS error behind a connect failure (ECONNREFUSED, ENOTFOUND, …). */
  readonly errno: string | null;
  readonly replied_at: number | null;
  /** JSON array of the addresses tried by the dialler, when it tried several or failed. */
  readonly attempts: string | null;
  /**
   * The upstream proxies the request went through (or tried), in order: a JSON array of
   * `scheme://host:port` strings, never credentials. null: it went direct (or never dialled).
   */
  readonly route: string | null;
  readonly status: SessionStatus;
  /** The engine's CloseReason ('completed', 'client-reset', …), or 'interrupted'. */
  readonly close_reason: string | null;
  readonly close_errno: string | null;
  readonly closed_at: number | null;
  /** Bytes per direction, exact: read from the source and written to the destination. */
  readonly bytes_up_received: number;
  readonly bytes_up_sent: number;
  readonly bytes_down_received: number;
  readonly bytes_down_sent: number;
  /** Payload bytes stored in `chunks` (as received); less than received when truncated. */
  readonly captured_bytes: number;
  /** 1 when `--capture-limit` cut the stored payload short. */
  readonly truncated: number;
  /**
   * UDP datagrams relayed (or dropped by the relay) whose record the capture left out because it
   * was behind (its queue full): datagrams cannot be paused like TCP, so their records are
   * dropped and counted instead (memory bounded: docs/architecture.md, "Trust rules"). 0 for TCP sessions.
   */
  readonly uncaptured_datagrams: number;
  /** 'tls', 'http', 'ssh' or null: detected from the first client bytes. */
  readonly protocol: string | null;
  /** TLS server name (SNI) or HTTP Host. */
  readonly sni: string | null;
  /** Protocol details as JSON: { alpn: string[] } for TLS, { method, host, path } for HTTP, { banner } for SSH. */
  readonly protocol_info: string | null;
  /** Tags set by addons, as a JSON object of strings. */
  readonly tags: string;
  /** The session this one replays (client replay), or null. */
  readonly replay_of: number | null;
  /** The recorded session a server replay answered this one from, or null. */
  readonly served_from: number | null;
}

/** One row of `chunks`: bytes of a TCP session in one direction, as one read delivered them. */
export interface ChunkRow {
  readonly id: number;
  readonly session_id: number;
  /** Per-session sequence number across both directions, from 0 (the engine's). */
  readonly seq: number;
  readonly at: number;
  readonly direction: "up" | "down";
  /** Bytes as received from the source (cut short when the session hit the capture limit). */
  readonly data: Buffer;
  /** The full length received, even when `data` was cut short. */
  readonly size: number;
  /** Bytes as sent, when a hook changed them (empty for drop/close/reset); null when unchanged. */
  readonly sent: Buffer | null;
  readonly verdict: StoredVerdict | null;
}

/** One row of `datagrams`: one UDP datagram of an association, relayed or dropped. */
export interface DatagramRow {
  readonly id: number;
  /** The UDP ASSOCIATE session that owns the association. */
  readonly session_id: number;
  readonly seq: number;
  readonly at: number;
  readonly direction: "up" | "down";
  /** The remote peer (where 'up' went as the client wrote it, where 'down' came from). */
  readonly peer_type: string | null;
  readonly peer_host: string | null;
  readonly peer_port: number | null;
  /** The wire source of the datagram (client or remote). */
  readonly from_host: string;
  readonly from_port: number;
  /** Where it went after resolution and redirects; null when dropped. */
  readonly to_host: string | null;
  readonly to_port: number | null;
  /** Payload as received, without the SOCKS header. */
  readonly data: Buffer;
  readonly size: number;
  readonly sent: Buffer | null;
  /** "injected": an addon (or a server replay) sent it to the client; `from` is the peer it claims. */
  readonly verdict: "relayed" | "dropped" | "injected";
  /** Why it was dropped (the engine's DatagramDropReason). */
  readonly reason: string | null;
  readonly detail: string | null;
}

/** What an event row records. */
export type EventKind =
  /** An addon hook threw, rejected or timed out (addon, hook, location, message). */
  | "hook-error"
  /** An addon called ctx.log(). */
  | "addon-log"
  /** An addon called ctx.tag(); message is `key=value`. */
  | "tag"
  /** Something out of spec the engine tolerated or rejected (code, message). */
  | "anomaly"
  /**
   * Capture itself: truncation started (code 'truncated'), datagram records left out while the
   * capture was behind (code 'datagrams-not-captured', one per burst, with the count), capture
   * stopped after an error.
   */
  | "capture"
  /**
   * TLS interception (`run --tls`): a handshake failed (code: the failure's code, e.g.
   * 'client-rejected-certificate', 'upstream-certificate'), or a ClientHello was passed through
   * untouched (code 'passthrough'). The session's `tls` row has the facts.
   */
  | "tls"
  /**
   * Server replay answered this session from a session of another capture file (code
   * 'served-from', message `served from FILE session N`); `served_from` only names sessions of this file.
   */
  | "replay"
  /**
   * A person changed the session through interactive intercept (`run --intercept`): code the
   * action (edit, redirect, deny, drop, close, reset), message what changed.
   */
  | "intercept";

/** One row of `events`: things that happened to a session (or to the run, with session_id null). */
export interface EventRow {
  readonly id: number;
  readonly session_id: number | null;
  readonly run_id: number;
  readonly at: number;
  readonly kind: EventKind;
  readonly addon: string | null;
  readonly hook: string | null;
  /** The addon's own file:line:column, for hook errors. */
  readonly location: string | null;
  /** A stable code: the anomaly code, the hook failure kind ('threw', 'rejected', 'timed-out'). */
  readonly code: string | null;
  readonly message: string;
}

/** How a session's intercept-or-passthrough was decided (the engine's TlsDecidedBy). */
export type TlsDecision = "default" | "filter" | "hook" | "auto-passthrough";

/**
 * One row of `tls`: what TLS interception (`run --tls`) learned about a CONNECT tunnel that began
 * with a ClientHello; at most one per session. Versions as Node names them ('TLSv1.3'), ciphers by
 * their standard names; lists are JSON arrays of strings. Columns of a handshake that did not
 * finish are null (a passthrough has only the ClientHello's facts).
 */
export interface TlsRow {
  readonly session_id: number;
  /** When the engine reported it (both handshakes done or failed, before the relay started). */
  readonly at: number;
  /** 1: the relay (hooks, capture) saw the plaintext; 0: passed through as ciphertext. */
  readonly intercepted: number;
  /** TlsDecision, as stored (a crafted file may hold anything). */
  readonly decided_by: string;
  /** The ClientHello's server_name; null when the client sent none. */
  readonly sni: string | null;
  /** ALPN protocols the client offered, in its order: JSON array ('[]' without the extension). */
  readonly alpn_offered: string;
  /** TLS versions the client offered, highest first: JSON array. */
  readonly versions_offered: string;
  /** What socksmith negotiated with the client (as the server); null unless that handshake finished. */
  readonly client_version: string | null;
  readonly client_cipher: string | null;
  readonly client_alpn: string | null;
  /** What socksmith negotiated with the target (as the client); null unless that handshake finished. */
  readonly upstream_version: string | null;
  readonly upstream_cipher: string | null;
  readonly upstream_alpn: string | null;
  /** The upstream's leaf certificate; null when none was seen. */
  readonly cert_subject: string | null;
  readonly cert_issuer: string | null;
  /** subjectAltName entries ("DNS:name", "IP Address:addr") as a JSON array. */
  readonly cert_sans: string | null;
  /** ISO 8601. */
  readonly cert_valid_from: string | null;
  readonly cert_valid_to: string | null;
  /** SHA-256 fingerprint, colon-separated hex. */
  readonly cert_fingerprint: string | null;
  /** "ok", "skipped (--upstream-insecure)", or why the upstream certificate failed verification. */
  readonly verification: string | null;
  /** Which side's handshake failed ('client' or 'upstream'), its stable code and message; null when none did. */
  readonly failure_side: string | null;
  readonly failure_code: string | null;
  readonly failure_message: string | null;
}

/** One row of `runs`: one process that wrote to the file. */
export interface RunRow {
  readonly id: number;
  readonly started_at: number;
  /** null while the run is going (or if it died without closing the file). */
  readonly ended_at: number | null;
  readonly pid: number;
  readonly hostname: string;
  /** JSON array of the listen addresses. */
  readonly listen: string;
  readonly socksmith_version: string;
}
