/**
 * A client replay, recorded in the capture file as a session of its own: a run of its own (like
 * any process that writes the file), written in one batch through the same writer as live
 * capture, with `replay_of` pointing at the session it replayed.
 *
 * The replay is described in store terms (ReplayedSession), so the store does not depend on the
 * replay code; src/replay/record.ts hands its result over.
 */
import { isIP } from "node:net";
import type { Endpoint } from "../engine/index.js";
import { ProtocolSniffer } from "../detect/index.js";
import type { Batch, Operation, Slice } from "./batch.js";
import { beginRun, openCapture } from "./database.js";
import type { SessionRow } from "./schema.js";
import { storedDetection } from "./stored-values.js";
import { CaptureWriter } from "./writer.js";

/** One piece of the replay's traffic: a read or write (TCP) or a datagram (UDP). */
export interface ReplayedTraffic {
  readonly direction: "up" | "down";
  readonly at: number;
  readonly data: Uint8Array;
}

export interface ReplayedSession {
  /** The recorded session that was replayed: the new one links to it and keeps its version and address type. */
  readonly original: Pick<SessionRow, "id" | "version" | "requested_type">;
  /** Where the replay connected, and through which proxy when it went through one. */
  readonly target: Endpoint;
  readonly via?: Endpoint;
  /** The replay's own end of the connection (its client address in the new session). */
  readonly local?: Endpoint;
  /** Connected and ran to the end; otherwise the session is "failed", with `error` as an event. */
  readonly completed: boolean;
  readonly error?: string;
  readonly startedAt: number;
  readonly endedAt: number;
  /** TCP: the bytes both ways, in order. */
  readonly chunks: readonly ReplayedTraffic[];
  /** UDP: every datagram both ways, in order, with the remote end; when present the session is a UDP association and `chunks` is not written. */
  readonly datagrams?: readonly (ReplayedTraffic & { readonly peer: Endpoint })[];
}

/** Writes the replay as a new session; returns its id. Throws a CaptureError when the file cannot take it. */
export function writeReplayedSession(file: string, replay: ReplayedSession, version: string): number {
  const db = openCapture(file);
  let run: ReturnType<typeof beginRun>;
  try {
    run = beginRun(db, file, { listen: [], version, now: replay.startedAt });
  } finally {
    db.close();
  }
  const writer = new CaptureWriter(file, run.runId);
  const sid = run.sessionBase + 1;
  const { original, datagrams } = replay;
  const traffic = datagrams ?? replay.chunks;
  const arena = Buffer.concat(traffic.map((t) => t.data));
  let offset = 0;
  const slice = (length: number): Slice => {
    const s = { offset, length };
    offset += length;
    return s;
  };
  const local = replay.local ?? { host: "", port: 0 };
  const at = replay.startedAt;
  const ops: Operation[] = [
    {
      op: "open",
      sid,
      engineId: 1,
      at,
      clientHost: local.host,
      clientPort: local.port,
      localHost: replay.via?.host ?? replay.target.host,
      localPort: replay.via?.port ?? replay.target.port,
    },
    datagrams === undefined
      ? {
          op: "request",
          sid,
          at,
          version: original.version ?? "5",
          command: "connect",
          type: original.requested_type ?? "domain",
          host: replay.target.host,
          port: replay.target.port,
          user: null,
        }
      : { op: "request", sid, at, version: "5", command: "udp", type: "ipv4", host: "0.0.0.0", port: 0, user: null },
    {
      op: "reply",
      sid,
      at,
      rep: replay.completed ? 0 : 1,
      code: null,
      errno: null,
      boundHost: local.host,
      boundPort: local.port,
      targetHost: replay.target.host,
      targetPort: replay.target.port,
      remoteHost: null,
      remotePort: null,
      attempts: null,
      route: null,
    },
    ...(datagrams === undefined
      ? replay.chunks.map((c, seq): Operation => {
          const { at, direction, data } = c;
          return { op: "chunk", sid, seq, at, direction, data: slice(data.length), size: data.length, sent: null, verdict: null };
        })
      : datagrams.map(
          (d, seq): Operation => ({
            op: "datagram",
            sid,
            seq,
            at: d.at,
            direction: d.direction,
            peerType: isIP(d.peer.host) === 6 ? "ipv6" : isIP(d.peer.host) === 4 ? "ipv4" : "domain",
            peerHost: d.peer.host,
            peerPort: d.peer.port,
            fromHost: d.direction === "up" ? local.host : d.peer.host,
            fromPort: d.direction === "up" ? local.port : d.peer.port,
            toHost: d.direction === "up" ? d.peer.host : local.host,
            toPort: d.direction === "up" ? d.peer.port : local.port,
            data: slice(d.data.length),
            size: d.data.length,
            sent: null,
            verdict: "relayed",
            reason: null,
            detail: null,
          }),
        )),
    { op: "links", sid, replayOf: original.id, servedFrom: null },
    ...(datagrams === undefined ? detected(sid, replay.chunks) : []),
    ...failure(sid, replay),
  ];
  const sum = (d: "up" | "down") => traffic.filter((t) => t.direction === d).reduce((n, t) => n + t.data.length, 0);
  ops.push({
    op: "close",
    sid,
    at: replay.endedAt,
    status: replay.completed ? "ok" : "failed",
    reason: replay.completed ? "completed" : "request-failed",
    errno: null,
    upReceived: sum("up"),
    upSent: sum("up"),
    downReceived: sum("down"),
    downSent: sum("down"),
    captured: arena.length,
    truncated: false,
  });
  const batch: Batch = {
    seq: 1,
    ops,
    bytes: arena.length,
    ...(arena.length === 0 ? {} : { arena: arena.buffer.slice(arena.byteOffset, arena.byteOffset + arena.length) as ArrayBuffer }),
  };
  try {
    writer.write(batch);
  } finally {
    writer.stop(replay.endedAt);
  }
  return sid;
}

/** A replay that did not complete: its error, as a capture event. */
function failure(sid: number, replay: ReplayedSession): Operation[] {
  if (replay.error === undefined) return [];
  return [{ op: "event", sid, at: replay.endedAt, kind: "capture", addon: null, hook: null, location: null, code: "replay-failed", message: replay.error }];
}

/** What the client's first bytes say the protocol is, stored as the recorder would store it. */
function detected(sid: number, chunks: readonly ReplayedTraffic[]): Operation[] {
  const sniffer = new ProtocolSniffer();
  for (const c of chunks) {
    if (c.direction !== "up") continue;
    const d = sniffer.push(c.data);
    if (d.kind === "need-more") continue;
    const stored = storedDetection(d);
    return stored === undefined ? [] : [{ op: "detected", sid, ...stored }];
  }
  return [];
}
