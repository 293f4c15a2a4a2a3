/**
 * TLS interception (`run --tls`): what the engine needs from outside to see the plaintext of a
 * CONNECT tunnel, and the facts it reports. The engine knows no certificates: it reads the first
 * client bytes of a tunnel, asks a `TlsInterceptor` whether they are a ClientHello and what to do
 * with it (with the hooks' `tlsClientHello` as the last word), hands both raw streams to the
 * interceptor for the two handshakes, and relays the plaintext streams it gets back exactly like
 * a plain tunnel (data hooks, capture, backpressure, half-close). Implemented by `tls/`.
 */
import type { Duplex } from "node:stream";
import type { Socket } from "node:net";
import type { Endpoint, SessionId } from "./types.js";

/** A ClientHello read from the start of a tunnel. */
export interface TlsHello {
  /** server_name (the host the client means), absent when the client sent none. */
  readonly sni?: string;
  /** ALPN protocols offered, in the client's order (empty without the extension). */
  readonly alpn: readonly string[];
  /** Versions offered, highest first, as Node names them ("TLSv1.3", "TLSv1.2", …). */
  readonly versions: readonly string[];
}

/** What a tunnel's first client bytes are, so far. */
export type HelloInspection =
  /** Could still become a ClientHello: read more (the engine bounds how much and how long). */
  | { readonly kind: "more" }
  /** Not TLS (or a ClientHello we cannot use): the tunnel relays as a plain one. */
  | { readonly kind: "not-tls" }
  /** A complete ClientHello, `length` bytes (records) long at the start of the bytes. */
  | { readonly kind: "hello"; readonly hello: TlsHello; readonly length: number };

/** The hook payload for `tlsClientHello`. */
export interface TlsHelloInfo extends TlsHello {
  readonly id: SessionId;
  /** The destination as requested (host name or address) and port. */
  readonly target: Endpoint;
}

/**
 * `intercept` or `passthrough` decide; undefined keeps the interceptor's own choice. `alpn`
 * (hook runners only, not addons): the protocol a served session's client gets (server replay
 * answering an h2 recording), when the client offered it.
 */
export type TlsHelloDecision = { readonly intercept: true; readonly alpn?: string } | { readonly passthrough: true } | undefined;

/** How a session's intercept-or-not was decided. */
export type TlsDecidedBy =
  /** `--tls` with no filter matching either way. */
  | "default"
  /** `--tls-hosts` / `--tls-passthrough`. */
  | "filter"
  /** An addon's onTlsClientHello. */
  | "hook"
  /** The client rejected our certificate for this host earlier in the run. */
  | "auto-passthrough";

/** The interceptor's choice before the hooks. */
export interface TlsChoice {
  readonly intercept: boolean;
  readonly decidedBy: TlsDecidedBy;
}

/** One side's negotiated TLS parameters. */
export interface TlsSideInfo {
  /** "TLSv1.3", "TLSv1.2", … */
  readonly version: string;
  /** The cipher suite's standard name, e.g. "TLS_AES_128_GCM_SHA256". */
  readonly cipher: string;
  /** The negotiated ALPN protocol; absent when none was. */
  readonly alpn?: string;
}

/** The upstream's leaf certificate, as a user would want to read it. */
export interface TlsCertificateInfo {
  readonly subject: string;
  readonly issuer: string;
  /** subjectAltName entries as "DNS:name" / "IP Address:addr". */
  readonly sans: readonly string[];
  /** ISO 8601. */
  readonly validFrom: string;
  readonly validTo: string;
  /** SHA-256 fingerprint, colon-separated hex (as Node's X509Certificate prints it). */
  readonly fingerprint256: string;
}

/** Which side's TLS failed, in words a user understands. */
export interface TlsFailure {
  readonly side: "client" | "upstream";
  /** A stable code: "client-rejected-certificate", "upstream-certificate", "upstream-handshake", "client-handshake", … */
  readonly code: string;
  readonly message: string;
}

/** Everything learned about a tunnel that started with a ClientHello: one per such session. */
export interface TlsFact {
  readonly id: SessionId;
  readonly at: number;
  /** Whether the plaintext is what the relay (hooks, capture) sees. */
  readonly intercepted: boolean;
  readonly decidedBy: TlsDecidedBy;
  readonly hello: TlsHello;
  /** The client side (socksmith as the server), once its handshake finished. */
  readonly client?: TlsSideInfo;
  /** The upstream side (socksmith as the client), once its handshake finished. */
  readonly upstream?: TlsSideInfo;
  readonly certificate?: TlsCertificateInfo;
  /** "ok", "skipped (--upstream-insecure)", or why the upstream certificate failed verification. */
  readonly verification?: string;
  readonly failure?: TlsFailure;
}

/** What `establish` gets. */
export interface TlsEstablishArgs {
  readonly id: SessionId;
  /** The destination as requested (after redirects): its name is checked against the certificate when there is no SNI. */
  readonly target: Endpoint;
  /** The address the upstream socket is connected to. */
  readonly remote: Endpoint;
  readonly hello: TlsHello;
  /**
   * The client's raw stream: reads start with the ClientHello bytes (and whatever followed
   * them), writes go to the client's socket. Destroying it destroys the client's socket.
   */
  readonly client: Duplex;
  /**
   * When `client` is the client's socket itself: the bytes already read from it (the ClientHello),
   * to hand to the TLSSocket made over it with `receivePrelude` before anything else.
   */
  readonly clientPrelude?: Buffer;
  /** The upstream's raw stream, nothing read from it yet. */
  readonly upstream: Duplex;
}

/** What `terminate` gets: a CONNECT that a hook serves (server replay), with no upstream. */
export interface TlsTerminateArgs {
  readonly id: SessionId;
  /** The destination as requested: the leaf is made for it (and the SNI). */
  readonly target: Endpoint;
  readonly hello: TlsHello;
  /** The client's raw stream, as for `establish`. */
  readonly client: Duplex;
  /** As for `establish`. */
  readonly clientPrelude?: Buffer;
  /** The protocol to answer with (from the hook); else the first the client offered. */
  readonly alpn?: string;
}

/** The client's handshake done with no upstream. */
export interface TlsTerminated {
  readonly ok: true;
  readonly client: Socket;
  readonly fact: Omit<TlsFact, "id" | "at" | "decidedBy" | "hello">;
}

/** Both handshakes done: the plaintext streams, and the facts. */
export interface TlsEstablished {
  readonly ok: true;
  /** Plaintext toward and from the client (a tls.TLSSocket in server mode). */
  readonly client: Socket;
  /** Plaintext toward and from the target (a tls.TLSSocket in client mode). */
  readonly upstream: Socket;
  readonly fact: Omit<TlsFact, "id" | "at" | "decidedBy" | "hello">;
}

/** A handshake failed: the engine closes both raw streams and records the fact. */
export interface TlsNotEstablished {
  readonly ok: false;
  readonly fact: Omit<TlsFact, "id" | "at" | "decidedBy" | "hello" | "intercepted">;
}

/** Implemented by `tls/interceptor.ts`; `EngineOptions.tls` turns interception on. */
export interface TlsInterceptor {
  /** Pure and synchronous: what the bytes read so far from a tunnel's client are. */
  inspect(bytes: Buffer): HelloInspection;
  /** Filters and the run's memory of clients that rejected our certificate (before any hook). */
  choose(hello: TlsHello, target: Endpoint): TlsChoice;
  /**
   * The client's handshake only, for a session a hook serves (server replay answering an
   * intercepted recording: an offline HTTPS mock). The leaf names the SNI and the target; ALPN is
   * `args.alpn`, else the first protocol the client offered. Never rejects. Optional: without it served sessions
   * stay opaque.
   */
  terminate?(args: TlsTerminateArgs): Promise<TlsTerminated | TlsNotEstablished>;
  /** Both handshakes, upstream first; never rejects (a failure is `ok: false`). */
  establish(args: TlsEstablishArgs): Promise<TlsEstablished | TlsNotEstablished>;
}
