/**
 * TLS interception (`run --tls`): the engine's TlsInterceptor. For a tunnel that began with a
 * ClientHello it connects TLS to the target first (the client's SNI, ALPN offers and highest
 * version), verifies the target's certificate, and only then finishes the client's handshake
 * with a leaf from the socksmith CA that mirrors the target's names and the ALPN the target
 * chose. Either failure ends the client's TLS with an alert and is reported in words.
 *
 * - Choice before hooks: `--tls-passthrough` wins over `--tls-hosts`; without `--tls-hosts`
 *   every ClientHello is intercepted. A host whose client rejected our certificate this run
 *   passes through from then on (`autoPassthrough`, on by default).
 * - Upstream verification uses Node's bundled roots plus `upstreamCa`; `upstreamInsecure`
 *   skips it (the fact says so).
 * - Both handshakes together are bounded by `handshakeTimeoutMs`.
 * - `keylog` receives NSS key-log lines of both sides (for Wireshark).
 */
import { isIP } from "node:net";
import { once } from "node:events";
import type { Duplex } from "node:stream";
import {
  TLSSocket,
  connect as tlsConnect,
  type ConnectionOptions,
  type TLSSocketOptions,
  createSecureContext,
  rootCertificates,
  type SecureContext,
  type SecureVersion,
} from "node:tls";
import type { X509Certificate } from "node:crypto";
import type {
  Endpoint,
  HelloInspection,
  TlsCertificateInfo,
  TlsChoice,
  TlsEstablishArgs,
  TlsEstablished,
  TlsFailure,
  TlsHello,
  TlsInterceptor,
  TlsNotEstablished,
  TlsSideInfo,
  TlsTerminateArgs,
  TlsTerminated,
} from "../engine/index.js";
import { DETECT_LIMIT } from "../detect/detection.js";
import { detectTls } from "../detect/tls-client-hello.js";
import { describeVerifyError } from "./verify-errors.js";
import { PROXY_CIPHERS } from "./ciphers.js";
import { receivePrelude } from "../engine/index.js";

/** Where leaf certificates come from (certificates.ts). */
export interface LeafSource {
  secureContextFor(request: { sni?: string; target: string; upstream?: X509Certificate }): Promise<SecureContext>;
}

/** Decides by destination: `--tls-hosts` / `--tls-passthrough` compiled from the filter language. */
export type HostMatcher = (hello: TlsHello, target: Endpoint) => boolean;

export interface InterceptorOptions {
  readonly certificates: LeafSource;
  /** Extra CA certificates (PEM) trusted for upstream verification, beside Node's roots. */
  readonly upstreamCa?: readonly string[];
  /** Skip upstream certificate verification. */
  readonly upstreamInsecure?: boolean;
  /** Intercept only matching tunnels (`--tls-hosts`). */
  readonly hosts?: HostMatcher;
  /** Never intercept matching tunnels (`--tls-passthrough`). */
  readonly passthrough?: HostMatcher;
  /** Pass through hosts whose client rejected our certificate (default true). */
  readonly autoPassthrough?: boolean;
  /** NSS key-log lines, both sides. */
  readonly keylog?: (line: Buffer) => void;
  /** Both handshakes must finish within this (default 15 s). */
  readonly handshakeTimeoutMs?: number;
  /** A client rejected our certificate for `host` (first time this run). */
  readonly distrusted?: (host: string) => void;
}

/** Hosts remembered for auto-passthrough, at most (the oldest is forgotten first). */
const DISTRUST_MAX = 10_000;

/**
 * The write (and read) high-water mark of both TLS sockets of an intercepted tunnel. At Node's
 * default, 16 KiB, the relay's write of one decrypted record already fills a socket, so it pauses
 * the other side and each record goes out in an event-loop turn of its own: one SSL_write, one
 * write system call and one wake-up of the peer per 16 KiB. At 256 KiB the records decrypted from
 * one read leave in one write. A stalled direction then holds up to 256 KiB in the writing
 * socket and as much in the paused reading one, less than a plain tunnel's reads of up to 1 MiB.
 * Paired runs of the bench's TLS download: write calls 7× fewer, context switches 5× fewer,
 * proxy CPU per MiB 1,601 → 1,291 µs and the client's 810 → 592 µs.
 */
const TLS_HIGH_WATER_MARK = 256 * 1024;

/**
 * Node passes `highWaterMark` from tls.connect's options and TLSSocket's on to the socket's
 * streams, but @types/node does not list it; `socket.writableHighWaterMark` shows it took effect
 * (test/tls/intercept.test.ts checks it).
 */
interface HighWaterMark {
  highWaterMark: number;
}

/** TLS alert descriptions (RFC 8446 §6). */
const ALERT_HANDSHAKE_FAILURE = 40;

/** Client alerts that mean "I do not trust your certificate". */
const REJECTION_CODES = new Set(["ERR_SSL_TLSV1_ALERT_UNKNOWN_CA", "ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE", "ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN"]);

const VERSION_NAMES: Readonly<Record<string, SecureVersion>> = {
  "TLS 1.0": "TLSv1",
  "TLS 1.1": "TLSv1.1",
  "TLS 1.2": "TLSv1.2",
  "TLS 1.3": "TLSv1.3",
};

export class TlsInterception implements TlsInterceptor {
  /** Hosts (SNI, or the target when there was none) whose clients rejected our certificate. */
  readonly distrusted = new Set<string>();
  private readonly roots: readonly string[];
  private readonly timeoutMs: number;
  /**
   * Upstream client contexts by version range. Parsing the roots (Node's ~140 and `upstreamCa`)
   * into a context took about 10 ms, most of an intercepted handshake's CPU, when every
   * connection passed them as `ca`; versions are a context setting, so one context per range.
   */
  private readonly upstreamContexts = new Map<string, SecureContext>();

  constructor(private readonly options: InterceptorOptions) {
    this.roots = [...rootCertificates, ...(options.upstreamCa ?? [])];
    this.timeoutMs = options.handshakeTimeoutMs ?? 15_000;
  }

  inspect(bytes: Buffer): HelloInspection {
    const seen = detectTls(bytes, DETECT_LIMIT);
    if (seen.kind === "need-more") return { kind: "more" };
    if (seen.kind !== "tls") return { kind: "not-tls" };
    const version = seen.version === undefined ? undefined : VERSION_NAMES[seen.version];
    // A hello offering only SSL 3.0 / TLS < 1.0 (or an unknown version) is not ours to terminate.
    if (version === undefined) return { kind: "not-tls" };
    const hello: TlsHello = { ...(seen.sni === undefined ? {} : { sni: seen.sni }), alpn: seen.alpn, versions: [version] };
    return { kind: "hello", hello, length: bytes.length };
  }

  choose(hello: TlsHello, target: Endpoint): TlsChoice {
    const { options } = this;
    if (options.autoPassthrough !== false && this.distrusted.has(hostOf(hello, target))) return { intercept: false, decidedBy: "auto-passthrough" };
    if (options.passthrough?.(hello, target) === true) return { intercept: false, decidedBy: "filter" };
    if (options.hosts !== undefined) return { intercept: options.hosts(hello, target), decidedBy: "filter" };
    return { intercept: true, decidedBy: "default" };
  }

  async establish(args: TlsEstablishArgs): Promise<TlsEstablished | TlsNotEstablished> {
    const deadline = Date.now() + this.timeoutMs;
    const upstream = await this.connectUpstream(args, deadline);
    if (!upstream.ok) {
      alert(args.client, ALERT_HANDSHAKE_FAILURE);
      return upstream;
    }
    const { socket: up, side: upstreamSide, certificate, verification, peer } = upstream;
    const client = await this.acceptClient(args, up.alpnProtocol || undefined, peer, deadline);
    if (!client.ok) {
      up.destroy();
      return { ok: false, fact: { upstream: upstreamSide, ...(certificate === undefined ? {} : { certificate }), verification, failure: client.failure } };
    }
    return {
      ok: true,
      client: client.socket,
      upstream: up,
      fact: { intercepted: true, client: client.side, upstream: upstreamSide, ...(certificate === undefined ? {} : { certificate }), verification },
    };
  }

  async terminate(args: TlsTerminateArgs): Promise<TlsTerminated | TlsNotEstablished> {
    // No target to ask: the client gets the protocol it prefers (a recording of h2 is answered as h2).
    const client = await this.acceptClient(args, args.alpn ?? args.hello.alpn[0], undefined, Date.now() + this.timeoutMs);
    if (!client.ok) return { ok: false, fact: { failure: client.failure } };
    return { ok: true, client: client.socket, fact: { intercepted: true, client: client.side, verification: "no target (served by a hook)" } };
  }

  /** TLS to the target over the raw upstream stream, verified (unless insecure). */
  private async connectUpstream(
    args: TlsEstablishArgs,
    deadline: number,
  ): Promise<
    | { ok: true; socket: TLSSocket; side: TlsSideInfo; certificate: TlsCertificateInfo | undefined; verification: string; peer: X509Certificate | undefined }
    | TlsNotEstablished
  > {
    const { hello, target } = args;
    const name = hostOf(hello, target);
    const highest = hello.versions[0] as SecureVersion | undefined;
    const options: ConnectionOptions & HighWaterMark = {
      socket: args.upstream,
      ...(hello.sni === undefined || isIP(hello.sni) !== 0 ? {} : { servername: hello.sni }),
      ...(hello.alpn.length === 0 ? {} : { ALPNProtocols: [...hello.alpn] }),
      // Verified below, so that a failure can be reported in words (and recorded) instead of thrown.
      rejectUnauthorized: false,
      // Names are checked below against the SNI or the requested target; Node would check the
      // connect options' host, which a wrapped stream does not have.
      checkServerIdentity: () => undefined,
      secureContext: this.upstreamContext(highest),
      highWaterMark: TLS_HIGH_WATER_MARK,
    };
    const up = tlsConnect(options);
    this.logKeys(up);
    follow(up, args.upstream);
    const failure = await settle(up, "secureConnect", deadline, args.upstream);
    if (failure !== undefined) {
      up.destroy();
      return { ok: false, fact: { failure: { side: "upstream", code: "upstream-handshake", message: `TLS handshake with ${name} failed: ${failure}` } } };
    }
    const side = sideOf(up);
    const peer = up.getPeerX509Certificate();
    const certificate = peer === undefined ? undefined : certificateInfo(peer);
    let problem: string | undefined;
    const notValidFor = (): string => `it is not valid for ${name} (it names ${certificate?.sans.join(", ") || "no host"})`;
    if (!up.authorized) problem = describeVerifyError(String(up.authorizationError));
    else if (peer === undefined || !matchesName(peer, name)) problem = notValidFor();
    if (problem !== undefined && this.options.upstreamInsecure !== true) {
      up.destroy();
      const failure: TlsFailure = { side: "upstream", code: "upstream-certificate", message: `the certificate of ${name} was refused: ${problem}` };
      return { ok: false, fact: { upstream: side, ...(certificate === undefined ? {} : { certificate }), verification: problem, failure } };
    }
    const verification = problem === undefined ? "ok" : `skipped (--upstream-insecure): ${problem}`;
    return { ok: true, socket: up, side, certificate, verification, peer };
  }

  /** The roots, and versions from `highest` down to TLS 1.2 (or `highest` alone when it is older); made once per range. */
  private upstreamContext(highest: SecureVersion | undefined): SecureContext {
    const key = highest ?? "default";
    let context = this.upstreamContexts.get(key);
    if (context === undefined) {
      const versions = highest === undefined ? {} : { maxVersion: highest, minVersion: highest < "TLSv1.2" ? highest : ("TLSv1.2" as const) };
      context = createSecureContext({ ca: [...this.roots], ciphers: PROXY_CIPHERS, ...versions });
      this.upstreamContexts.set(key, context);
    }
    return context;
  }

  /** The client's handshake with a leaf for the target, offering only the ALPN the target chose. */
  private async acceptClient(
    args: Pick<TlsEstablishArgs, "hello" | "target" | "client" | "clientPrelude">,
    alpn: string | undefined,
    peer: X509Certificate | undefined,
    deadline: number,
  ): Promise<{ ok: true; socket: TLSSocket; side: TlsSideInfo } | { ok: false; failure: TlsFailure }> {
    const { hello, target } = args;
    const name = hostOf(hello, target);
    let context: SecureContext;
    try {
      context = await this.options.certificates.secureContextFor({
        ...(hello.sni === undefined ? {} : { sni: hello.sni }),
        target: target.host,
        ...(peer === undefined ? {} : { upstream: peer }),
      });
    } catch (err) {
      alert(args.client, ALERT_HANDSHAKE_FAILURE);
      return { ok: false, failure: { side: "client", code: "certificate-failed", message: `no certificate for ${name}: ${errorText(err)}` } };
    }
    const options: TLSSocketOptions & HighWaterMark = {
      isServer: true,
      secureContext: context,
      highWaterMark: TLS_HIGH_WATER_MARK,
      // The target chose no protocol: neither does the client's side (the callback is what
      // rejects a client that offered only protocols the target did not pick).
      ...(alpn === undefined ? {} : { ALPNCallback: ({ protocols }: { protocols: string[] }) => (protocols.includes(alpn) ? alpn : undefined) }),
    };
    const down = new TLSSocket(args.client as Duplex, options);
    // Key logging first: the server's handshake secrets come out while the ClientHello is processed.
    this.logKeys(down);
    follow(down, args.client);
    if (args.clientPrelude !== undefined) receivePrelude(down, args.clientPrelude);
    const failure = await settle(down, "secure", deadline, args.client);
    if (failure === undefined) return { ok: true, socket: down, side: sideOf(down) };
    down.destroy();
    if (failure.rejected) {
      this.distrust(name);
      return {
        ok: false,
        failure: { side: "client", code: "client-rejected-certificate", message: `the client does not trust the socksmith CA for ${name} (${failure})` },
      };
    }
    return { ok: false, failure: { side: "client", code: "client-handshake", message: `TLS handshake with the client failed: ${failure}` } };
  }

  private distrust(name: string): void {
    if (this.distrusted.has(name)) return;
    if (this.distrusted.size >= DISTRUST_MAX) this.distrusted.delete(this.distrusted.values().next().value as string);
    this.distrusted.add(name);
    this.options.distrusted?.(name);
  }

  private logKeys(socket: TLSSocket): void {
    const keylog = this.options.keylog;
    if (keylog !== undefined) socket.on("keylog", (line: Buffer) => keylog(line));
  }
}

/**
 * A TLS socket over a Duplex does not notice the Duplex failing or closing: its stream wrapper
 * only reads and writes. Ends it when its raw stream ends for good, with the raw error if any.
 */
function follow(socket: TLSSocket, raw: Duplex): void {
  raw.on("error", (err) => socket.destroy(err));
  raw.once("close", () => socket.destroy());
}

/** Why a handshake did not finish, and whether it looks like the client refusing our certificate. */
class HandshakeFailure {
  constructor(
    readonly text: string,
    readonly rejected: boolean,
  ) {}
  toString(): string {
    return this.text;
  }
}

/**
 * Waits for `event` (the handshake's end); a failure, the peer's FIN or close, or the deadline
 * instead gives why. Never rejects. (The TLS socket does not see its raw stream's FIN while it
 * waits for handshake bytes, so the raw stream is watched too.)
 */
async function settle(socket: TLSSocket, event: "secure" | "secureConnect", deadline: number, raw: Duplex): Promise<HandshakeFailure | undefined> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), Math.max(0, deadline - Date.now()));
  const ended = raw.readableEnded ? Promise.resolve() : once(raw, "end", { signal: controller.signal });
  // A TLS socket nobody reads yet does not emit 'end' for its peer's FIN: a 'readable' listener
  // sees it (without reading: bytes after the handshake belong to the relay). Removed once settled.
  let sawEnd!: () => void;
  const peerEnded = new Promise<void>((resolve) => (sawEnd = resolve));
  const onReadable = (): void => {
    if ((socket as unknown as { _readableState?: { ended?: boolean } })._readableState?.ended === true) sawEnd();
  };
  socket.on("readable", onReadable);
  const closed = Promise.race([once(socket, "close", { signal: controller.signal }), ended, peerEnded]).then(
    () => new HandshakeFailure("the connection closed during the handshake", true),
  );
  try {
    await Promise.race([once(socket, event, { signal: controller.signal }), closed]).then((value) => {
      if (value instanceof HandshakeFailure) throw value;
    });
    return undefined;
  } catch (err) {
    if (err instanceof HandshakeFailure) return err;
    if (controller.signal.aborted) return new HandshakeFailure("no answer before the handshake timeout", false);
    const code = (err as NodeJS.ErrnoException).code ?? "";
    return new HandshakeFailure(errorText(err), REJECTION_CODES.has(code) || code === "ECONNRESET");
  } finally {
    socket.removeListener("readable", onReadable);
    clearTimeout(timer);
    controller.abort();
    closed.catch(() => {});
  }
}

/** Sends a fatal alert on a stream that has not started TLS yet (before our ServerHello), then ends it. */
function alert(stream: Duplex, description: number): void {
  if (stream.destroyed) return;
  stream.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]));
}

/** Whether the certificate is valid for `name` (a host name, or an IP address as an IP SAN). */
function matchesName(cert: X509Certificate, name: string): boolean {
  const bare = name.startsWith("[") && name.endsWith("]") ? name.slice(1, -1) : name;
  return isIP(bare) === 0 ? cert.checkHost(bare) !== undefined : cert.checkIP(bare) !== undefined;
}

/** The name the client means: its SNI, else the requested target. */
function hostOf(hello: TlsHello, target: Endpoint): string {
  return hello.sni ?? target.host;
}

function sideOf(socket: TLSSocket): TlsSideInfo {
  const cipher = socket.getCipher();
  const alpn = socket.alpnProtocol;
  return {
    version: socket.getProtocol() ?? "unknown",
    cipher: cipher.standardName ?? cipher.name,
    ...(typeof alpn === "string" && alpn !== "" ? { alpn } : {}),
  };
}

function certificateInfo(cert: X509Certificate): TlsCertificateInfo {
  return {
    subject: oneLine(cert.subject),
    issuer: oneLine(cert.issuer),
    sans: cert.subjectAltName === undefined ? [] : cert.subjectAltName.split(", "),
    validFrom: isoDate(cert.validFrom),
    validTo: isoDate(cert.validTo),
    fingerprint256: cert.fingerprint256,
  };
}

function oneLine(name: string): string {
  return name.split("\n").join(", ");
}

function isoDate(text: string): string {
  const time = Date.parse(text);
  return Number.isNaN(time) ? text : new Date(time).toISOString();
}

/** An error in words: OpenSSL's reason ("tlsv1 alert unknown ca") rather than its whole error line. */
function errorText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const reason = /SSL routines:[^:]*:([^:]+):/.exec(message)?.[1];
  return reason ?? message.trim();
}
