/** Client replay of any captured session that can be replayed: CONNECT (turns) or UDP ASSOCIATE (datagrams). */
import type { ChunkRow, DatagramRow, SessionRow, TlsRow } from "../store/schema.js";
import { replayClient, type ClientReplayOptions, type ClientReplayResult, type ReplayTls } from "./client-replay.js";
import { replayDatagrams } from "./datagram-replay.js";

/** What the replays read of a capture (the CaptureReader fits). */
export interface ReplaySource {
  chunks(sessionId: number): Iterable<ChunkRow>;
  datagrams(sessionId: number): Iterable<DatagramRow>;
  /** The session's TLS facts (`run --tls`), if it began with a ClientHello. */
  tls(sessionId: number): TlsRow | undefined;
}

export const PASSTHROUGH_NOTICE = "TLS passthrough session: replaying recorded ciphertext cannot succeed; intercept it with --tls to replay";

/** Why a session cannot be replayed, or undefined when it can. */
export function notReplayable(session: SessionRow): string | undefined {
  if (session.command === "connect" || session.command === "udp") return undefined;
  if (session.command === "bind") return `session ${session.id} is a BIND: only CONNECT and UDP ASSOCIATE sessions can be replayed`;
  return `session ${session.id} has no request (the handshake did not finish): nothing to replay`;
}

/**
 * Replays a session. An intercepted TLS session (its tls row says so, and neither handshake
 * failed) is replayed inside a new TLS connection; any other is replayed byte for byte, with a
 * notice when those bytes are TLS that cannot be replayed.
 */
export async function replaySession(source: ReplaySource, session: SessionRow, options: ClientReplayOptions = {}): Promise<ClientReplayResult> {
  if (session.command === "udp") return replayDatagrams(session, [...source.datagrams(session.id)], options);
  const row = source.tls(session.id);
  const chunks = [...source.chunks(session.id)];
  if (row === undefined) return replayClient(session, chunks, options);
  if (row.intercepted === 1 && row.failure_side === null) return replayClient(session, chunks, { ...options, tls: replayTlsOf(row, session) });
  const result = await replayClient(session, chunks, options);
  const notice =
    row.intercepted === 1
      ? `the recorded TLS interception failed (${row.failure_side} side): nothing was decrypted, the recorded bytes were replayed as they are`
      : PASSTHROUGH_NOTICE;
  return { ...result, notice };
}

/**
 * The recorded handshake: the SNI, and as ALPN the protocol the target chose (what the recorded
 * plaintext speaks), else what the client offered.
 */
export function replayTlsOf(row: TlsRow, session: SessionRow): ReplayTls {
  const name = row.sni ?? session.requested_host ?? session.target_host ?? "";
  const alpn = row.upstream_alpn !== null ? [row.upstream_alpn] : offered(row.alpn_offered);
  return { ...(row.sni === null ? {} : { sni: row.sni }), name, alpn };
}

/** A JSON array of strings from the capture (a crafted file may hold anything: then none). */
function offered(json: string): string[] {
  try {
    const value: unknown = JSON.parse(json);
    return Array.isArray(value) ? value.filter((x): x is string => typeof x === "string" && x.length > 0 && x.length < 256) : [];
  } catch {
    return [];
  }
}
