/** Client replay of any captured session that can be replayed: CONNECT (turns) or UDP ASSOCIATE (datagrams). */
import type { ChunkRow, DatagramRow, SessionRow } from "../store/schema.js";
import { replayClient, type ClientReplayOptions, type ClientReplayResult } from "./client-replay.js";
import { replayDatagrams } from "./datagram-replay.js";

/** What the replays read of a capture (the CaptureReader fits). */
export interface ReplaySource {
  chunks(sessionId: number): Iterable<ChunkRow>;
  datagrams(sessionId: number): Iterable<DatagramRow>;
}

/** Why a session cannot be replayed, or undefined when it can. */
export function notReplayable(session: SessionRow): string | undefined {
  if (session.command === "connect" || session.command === "udp") return undefined;
  if (session.command === "bind") return `session ${session.id} is a BIND: only CONNECT and UDP ASSOCIATE sessions can be replayed`;
  return `session ${session.id} has no request (the handshake did not finish): nothing to replay`;
}

export function replaySession(source: ReplaySource, session: SessionRow, options: ClientReplayOptions = {}): Promise<ClientReplayResult> {
  return session.command === "udp"
    ? replayDatagrams(session, [...source.datagrams(session.id)], options)
    : replayClient(session, [...source.chunks(session.id)], options);
}
