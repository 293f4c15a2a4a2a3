/**
 * Client replay: send a recorded client's bytes to the target again and compare the answer with
 * the recording.
 *
 * Turns (turns.ts): the client's bytes until the server spoke, then the server's answer. With
 * `pace: "turns"` each client turn is sent after the previous server turn has arrived: as many
 * bytes as were recorded, or nothing new for `quietMs` (the server answered less, or differently
 * sized), whichever comes first. `"original"` sends each client turn at its recorded offset from
 * the start; `"none"` sends everything at once. After the last client turn the replay half-closes
 * when the recorded client did, and waits for the rest of the answer (same rule) and the close.
 *
 * TLS (`tls`, an intercepted session's replay): after the connection is up (and any SOCKS
 * handshake), a new TLS handshake with the recorded SNI and ALPN, the certificate verified against
 * Node's roots plus `trust.ca` for the SNI (else the recorded target) unless `trust.insecure`; then
 * the recorded plaintext turns go through it and the decrypted answer is compared.
 *
 * Limits: byte-exact replay only reproduces stateless exchanges. Nonces, timestamps, cookies
 * and recorded TLS ciphertext (fresh keys every handshake) make the server answer differently, or
 * refuse; the report then shows where the answer first differs.
 */
import { type Socket, connect } from "node:net";
import { isIP } from "node:net";
import { type TLSSocket, checkServerIdentity, connect as tlsConnect, rootCertificates } from "node:tls";
import { REP_NAMES, decodeMethodSelection, decodeReply, encodeGreeting, encodeRequest, encodeUserPass, type Endpoint } from "../engine/index.js";
import type { ChunkRow, SessionRow } from "../store/schema.js";
import { describeVerifyError } from "../tls/verify-errors.js";
import { firstDifference, sideOf, turnsOf } from "./turns.js";

/** A SOCKS5 proxy to go through, e.g. a running socksmith so that its hooks apply. */
export interface Via {
  readonly host: string;
  readonly port: number;
  readonly user?: string;
  readonly password?: string;
}

export interface ClientReplayOptions {
  /** Connect here instead of the recorded target. */
  readonly target?: Endpoint;
  readonly via?: Via;
  readonly pace?: "turns" | "original" | "none";
  /** How long without a new byte counts as "the server has answered" (default 500 ms). */
  readonly quietMs?: number;
  /** The longest a whole replay may take (default 30 s). */
  readonly timeoutMs?: number;
  /** Told the local address as soon as the TCP connection is up (before any SOCKS handshake). */
  readonly connected?: (local: Endpoint) => void;
  /** Replay inside a new TLS connection (replay-session.ts sets it from the session's tls row). */
  readonly tls?: ReplayTls;
  /** Which certificates a TLS replay accepts. */
  readonly trust?: TlsTrust;
}

/** The TLS handshake of a replay, as recorded. */
export interface ReplayTls {
  /** Sent as SNI (none when undefined or an IP address). */
  readonly sni?: string;
  /** What the certificate must be valid for: the SNI, else the recorded target's host. */
  readonly name: string;
  /** Offered, in order (none when empty). */
  readonly alpn: readonly string[];
}

export interface TlsTrust {
  /** PEM certificates trusted beside Node's roots (`--upstream-ca`, or the socksmith CA of the proxy the replay goes through). */
  readonly ca?: readonly string[];
  /** Accept any certificate (`--insecure`). */
  readonly insecure?: boolean;
}

/** What a TLS replay negotiated. */
export interface ReplayedTls {
  readonly sni?: string;
  readonly offered: readonly string[];
  /** Set once the handshake finished. */
  readonly version?: string;
  readonly alpn?: string;
  /** False when the certificate was not checked (`insecure`). */
  readonly verified?: boolean;
}

/** One recorded chunk of the replay, for recording it as a new session. */
export interface ReplayedChunk {
  readonly direction: "up" | "down";
  readonly at: number;
  readonly data: Buffer;
}

export interface ClientReplayResult {
  /** The recorded session. */
  readonly original: number;
  /** Where the replay connected (through `via` when given). */
  readonly target: Endpoint;
  readonly via?: Endpoint;
  /** Connected and ran to the end (matching or not). */
  readonly completed: boolean;
  readonly error?: string;
  readonly startedAt: number;
  readonly endedAt: number;
  /** The local end of the replay's connection. */
  readonly local?: Endpoint;
  readonly sent: number;
  /** What the recorded client sent: less went out when the other side closed first. */
  readonly recordedSent: number;
  readonly turns: number;
  readonly expected: number;
  readonly received: number;
  /** The answer equals the recorded one, byte for byte. */
  readonly match: boolean;
  readonly difference?: { readonly offset: number; readonly expected: string; readonly actual: string };
  readonly chunks: readonly ReplayedChunk[];
  /** Replayed inside TLS: what was asked for, and what was negotiated. */
  readonly tls?: ReplayedTls;
  /** Why this replay cannot be expected to work (a TLS passthrough session's ciphertext). */
  readonly notice?: string;
  /** A UDP association's replay has these too (datagram-replay.ts); `sent`/`received` are payload bytes. */
  readonly udp?: UdpReplayDetail;
}

/** What a UDP replay adds to the result. */
export interface UdpReplayDetail {
  /** Every datagram, both ways, in order (for recording the replay). */
  readonly datagrams: readonly ReplayedDatagram[];
  /** Datagrams sent; answers recorded; answers received now. */
  readonly sent: number;
  readonly expected: number;
  readonly received: number;
  /** The first answer (0-based) that differs from the recorded one, when one does. */
  readonly differingAnswer?: number;
}

export interface ReplayedDatagram {
  readonly direction: "up" | "down";
  readonly at: number;
  /** Where an "up" datagram went (as sent), where a "down" one came from. */
  readonly peer: Endpoint;
  readonly data: Buffer;
}

export async function replayClient(session: SessionRow, chunks: Iterable<ChunkRow>, options: ClientReplayOptions = {}): Promise<ClientReplayResult> {
  const turns = turnsOf(chunks);
  const target = options.target ?? recordedTarget(session);
  const quietMs = options.quietMs ?? 500;
  const startedAt = Date.now();
  const deadline = startedAt + (options.timeoutMs ?? 30_000);
  const expected = sideOf(turns, "down");
  const log: ReplayedChunk[] = [];
  if (target === undefined) {
    return {
      original: session.id,
      target: { host: "?", port: 0 },
      completed: false,
      error: `session ${session.id} has no target to replay to (use --target)`,
      startedAt,
      endedAt: Date.now(),
      sent: 0,
      recordedSent: sideOf(turns, "up").length,
      turns: 0,
      expected: expected.length,
      received: 0,
      match: false,
      chunks: [],
    };
  }
  const base = {
    original: session.id,
    target,
    ...(options.via === undefined ? {} : { via: { host: options.via.host, port: options.via.port } }),
    startedAt,
    sent: 0,
    recordedSent: sideOf(turns, "up").length,
    turns: turns.filter((t) => t.direction === "up").length,
    expected: expected.length,
  };
  let tls: ReplayedTls | undefined = options.tls === undefined ? undefined : { ...sniOf(options.tls), offered: options.tls.alpn };
  let raw: Socket | undefined;
  let socket: Socket | undefined;
  const received: Buffer[] = [];
  let receivedBytes = 0;
  let lastByteAt = Date.now();
  let closed = false;
  try {
    raw = (await open(target, options.via, deadline, options.connected)).socket;
    const local = { host: raw.localAddress ?? "", port: raw.localPort ?? 0 };
    if (options.tls === undefined) socket = raw;
    else {
      const secure = await handshake(raw, options.tls, options.trust ?? {}, deadline);
      socket = secure;
      const alpn = secure.alpnProtocol;
      tls = { ...tls!, version: secure.getProtocol() ?? "unknown", ...(alpn ? { alpn } : {}), verified: options.trust?.insecure !== true };
    }
    socket.on("data", (d: Buffer) => {
      received.push(d);
      receivedBytes += d.length;
      lastByteAt = Date.now();
      log.push({ direction: "down", at: lastByteAt, data: d });
    });
    socket.on("close", () => (closed = true));
    socket.on("error", () => {});
    // The SOCKS handshake left it paused (with any early answer bytes put back).
    socket.resume();
    const send = (data: Buffer) => {
      log.push({ direction: "up", at: Date.now(), data });
      socket!.write(data);
    };
    // Answer bytes expected by the end of each turn.
    const waitFor = async (bytes: number) => {
      while (receivedBytes < bytes && !closed && Date.now() < deadline && Date.now() - lastByteAt < quietMs) await sleep(5);
    };
    const pace = options.pace ?? "turns";
    let expectedSoFar = 0;
    let sent = 0;
    if (pace === "none") {
      for (const t of turns) {
        if (t.direction !== "up") continue;
        send(t.data);
        sent += t.data.length;
      }
    } else {
      const t0 = turns[0]?.at ?? 0;
      for (const turn of turns) {
        if (turn.direction === "down") {
          expectedSoFar += turn.data.length;
          if (pace === "turns") {
            lastByteAt = Math.max(lastByteAt, Date.now());
            await waitFor(expectedSoFar);
          }
          continue;
        }
        if (pace === "original") await sleep(Math.max(0, startedAt + (turn.at - t0) - Date.now()));
        if (closed) break;
        send(turn.data);
        sent += turn.data.length;
      }
    }
    // The recorded client half-closed when it ended normally; then wait for the rest.
    if (session.close_reason === "completed" && !closed) socket.end();
    lastByteAt = Math.max(lastByteAt, Date.now());
    await waitFor(expected.length);
    // A little longer for the close itself (a server that answers and closes).
    const closeBy = Math.min(deadline, Date.now() + quietMs);
    while (!closed && Date.now() < closeBy) await sleep(5);
    const answer = Buffer.concat(received);
    const difference = firstDifference(expected, answer);
    return {
      ...base,
      ...(tls === undefined ? {} : { tls }),
      local,
      completed: true,
      endedAt: Date.now(),
      sent,
      received: answer.length,
      match: difference === undefined,
      ...(difference === undefined ? {} : { difference }),
      chunks: log,
    };
  } catch (err) {
    return {
      ...base,
      ...(tls === undefined ? {} : { tls }),
      completed: false,
      error: (err as Error).message,
      endedAt: Date.now(),
      received: receivedBytes,
      match: false,
      chunks: log,
    };
  } finally {
    socket?.destroy();
    raw?.destroy();
  }
}

function sniOf(tls: ReplayTls): { sni?: string } {
  return tls.sni === undefined || isIP(tls.sni) !== 0 ? {} : { sni: tls.sni };
}

/**
 * TLS over an open connection, verified unless `trust.insecure`. @throws an Error in words: the
 * certificate refused (and how to trust it), or why the handshake failed.
 */
async function handshake(raw: Socket, tls: ReplayTls, trust: TlsTrust, deadline: number): Promise<TLSSocket> {
  const { sni } = sniOf(tls);
  const secure = tlsConnect({
    socket: raw,
    ...(sni === undefined ? {} : { servername: sni }),
    ...(tls.alpn.length === 0 ? {} : { ALPNProtocols: [...tls.alpn] }),
    ca: [...rootCertificates, ...(trust.ca ?? [])],
    // Verified below, so that a handshake failure and a refused certificate read differently.
    rejectUnauthorized: false,
    checkServerIdentity: () => undefined,
  });
  secure.on("error", () => {});
  const timer = setTimeout(() => secure.destroy(new Error("no TLS handshake before the replay's time ran out")), Math.max(1, deadline - Date.now()));
  try {
    await new Promise<void>((resolve, reject) => {
      secure.once("secureConnect", resolve);
      secure.once("error", reject);
      secure.once("close", () => reject(new Error("the connection closed during the handshake")));
    });
  } catch (err) {
    secure.destroy();
    throw new Error(`TLS handshake with ${tls.name} failed: ${reasonOf(err)}`);
  } finally {
    clearTimeout(timer);
  }
  if (trust.insecure === true) return secure;
  let problem: string | undefined;
  if (!secure.authorized) problem = describeVerifyError(String(secure.authorizationError));
  else {
    const cert = secure.getPeerCertificate();
    const mismatch = checkServerIdentity(bare(tls.name), cert);
    if (mismatch !== undefined) problem = `it is not valid for ${tls.name} (it names ${cert.subjectaltname || "no host"})`;
  }
  if (problem === undefined) return secure;
  secure.destroy();
  throw new Error(`TLS: the certificate of ${tls.name} was refused: ${problem} (trust its CA with --upstream-ca FILE, or skip the check with --insecure)`);
}

/** An IP address without the brackets a URL-style host has. */
function bare(name: string): string {
  return name.startsWith("[") && name.endsWith("]") ? name.slice(1, -1) : name;
}

/** OpenSSL's reason ("tlsv1 alert unknown ca") rather than its whole error line. */
function reasonOf(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return /SSL routines:[^:]*:([^:]+):/.exec(message)?.[1] ?? message.trim();
}

/** Where the recorded session went: the target it dialled (after redirects), else what was asked. */
export function recordedTarget(s: SessionRow): Endpoint | undefined {
  if (s.target_host !== null && s.target_port !== null) return { host: s.target_host, port: s.target_port };
  if (s.requested_host !== null && s.requested_port !== null) return { host: s.requested_host, port: s.requested_port };
  return undefined;
}

/**
 * A TCP connection to the target, directly or through a SOCKS5 proxy (optional RFC 1929): a
 * CONNECT, or with `command` "udp" a UDP ASSOCIATE (then `bound` is the proxy's UDP relay).
 */
export async function open(
  target: Endpoint,
  via: Via | undefined,
  deadline: number,
  connected?: (local: Endpoint) => void,
  command: "connect" | "udp" = "connect",
): Promise<{ socket: Socket; bound?: Endpoint }> {
  const at = via ?? target;
  const socket = connect({ host: at.host, port: at.port });
  const timer = setTimeout(() => socket.destroy(new Error(`no connection to ${at.host}:${at.port} in time`)), Math.max(1, deadline - Date.now()));
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    connected?.({ host: socket.localAddress ?? "", port: socket.localPort ?? 0 });
    if (via === undefined) return { socket };
    const read = reader(socket);
    const auth = via.user !== undefined;
    socket.write(encodeGreeting({ methods: auth ? [0x02] : [0x00] }));
    const method = await read(decodeMethodSelection);
    if (method === 0xff) throw new Error(`the proxy at ${via.host}:${via.port} accepts none of our methods`);
    if (method === 0x02) {
      socket.write(encodeUserPass({ user: Buffer.from(via.user ?? "", "latin1"), password: Buffer.from(via.password ?? "", "latin1") }));
      const status = await read((b) => (b.length < 2 ? { kind: "need-more" as const } : { kind: "ok" as const, value: b[1]!, used: 2 }));
      if (status !== 0) throw new Error(`the proxy at ${via.host}:${via.port} rejected the user name or password`);
    }
    const type = isIP(target.host) === 4 ? "ipv4" : isIP(target.host) === 6 ? "ipv6" : "domain";
    socket.write(encodeRequest({ command, rsv: 0, destination: { type, host: target.host, port: target.port } }));
    const reply = await read(decodeReply);
    if (reply.rep !== 0) throw new Error(`the proxy answered ${reply.rep.toString(16).padStart(2, "0")} ${REP_NAMES[reply.rep] ?? ""}`.trimEnd());
    return { socket, bound: { host: reply.bound.host, port: reply.bound.port } };
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

type Decoder<T> = (bytes: Uint8Array) => { kind: "need-more" } | { kind: "ok"; value: T; used: number } | { kind: "error"; error: { message: string } };

/** Reads SOCKS replies off a socket during the handshake; bytes past them are put back. */
function reader(socket: Socket) {
  let buffered = Buffer.alloc(0);
  return <T>(decode: Decoder<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const attempt = (): boolean => {
        const r = decode(buffered);
        if (r.kind === "need-more") return false;
        // Paused, so that nothing is emitted before the caller listens.
        socket.pause();
        socket.off("data", onData);
        socket.off("close", onClose);
        if (r.kind === "error") reject(new Error(`bad reply from the proxy: ${r.error.message}`));
        else {
          const rest = buffered.subarray(r.used);
          buffered = Buffer.alloc(0);
          if (rest.length > 0) socket.unshift(rest);
          resolve(r.value);
        }
        return true;
      };
      const onData = (d: Buffer) => {
        buffered = Buffer.concat([buffered, d]);
        attempt();
      };
      const onClose = () => reject(new Error("the proxy closed the connection during the handshake"));
      if (attempt()) return;
      socket.on("data", onData);
      socket.once("close", onClose);
      socket.resume();
    });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
