/**
 * A client replay, recorded in the capture file as a session of its own, with `replay_of`
 * pointing at the session it replayed: the replay's result handed to the store's writer of
 * replayed sessions (store/replayed-session.ts).
 */
import type { SessionRow } from "../store/schema.js";
import { writeReplayedSession } from "../store/replayed-session.js";
import type { ClientReplayResult } from "./client-replay.js";

/** Writes the replay; returns its session id. Throws a CaptureError when the file cannot take it. */
export function recordReplay(file: string, original: SessionRow, result: ClientReplayResult, version: string): number {
  const { target, via, local, completed, error, startedAt, endedAt, chunks, udp } = result;
  return writeReplayedSession(
    file,
    {
      original,
      target,
      ...(via === undefined ? {} : { via }),
      ...(local === undefined ? {} : { local }),
      completed,
      ...(error === undefined ? {} : { error }),
      startedAt,
      endedAt,
      chunks,
      ...(udp === undefined ? {} : { datagrams: udp.datagrams }),
    },
    version,
  );
}
