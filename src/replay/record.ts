/**
 * A client replay, recorded in the capture file as a session of its own (a run of its own, like
 * any process that writes the file), with `replay_of` pointing at the session it replayed.
 */
import type { Batch, Operation, Slice } from "../store/batch.js";
import { beginRun, openCapture } from "../store/database.js";
import type { SessionRow } from "../store/schema.js";
import { CaptureWriter } from "../store/writer.js";
import type { ClientReplayResult } from "./client-replay.js";
import { isIP } from "node:net";
import { ProtocolSniffer } from "../detect/index.js";
import { storedDetection } from "../store/recorder.js";

/** Writes the replay; returns its session id. Throws a CaptureError when the file cannot take it. */
export function recordReplay(file: string, original: SessionRow, result: ClientReplayResult, version: string): number {
  const db = openCapture(file);
  let run;
  try {
    run = beginRun(db, file, { listen: [], version, now: result.startedAt });
  } finally {
    db.close();
  }
  const writer = new CaptureWriter(file, run.runId);
  const sid = run.sessionBase + 1;
  const udp = result.udp;
  const payloads = udp === undefined ? result.chunks.map((c) => c.data) : udp.datagrams.map((d) => d.data);
  const arena = Buffer.concat(payloads);
  let offset = 0;
  const slice = (length: number): Slice => {
    const s = { offset, length };
    offset += length;
    return s;
  };
  const local = result.local ?? { host: "", port: 0 };
  const at = result.startedAt;
  const ops: Operation[] = [
    { op: "open", sid, engineId: 1, at, clientHost: local.host, clientPort: local.port, localHost: result.via?.host ?? result.target.host, localPort: result.via?.port ?? result.target.port },
    udp === undefined
      ? { op: "request", sid, at, version: original.version ?? "5", command: "connect", type: original.requested_type ?? "domain", host: result.target.host, port: result.target.port, user: null }
      : { op: "request", sid, at, version: "5", command: "udp", type: "ipv4", host: "0.0.0.0", port: 0, user: null },
    {
      op: "reply",
      sid,
      at,
      rep: result.completed ? 0 : 1,
      code: null,
      errno: null,
      boundHost: local.host,
      boundPort: local.port,
      targetHost: result.target.host,
      targetPort: result.target.port,
      remoteHost: null,
      remotePort: null,
      attempts: null,
    },
    ...(udp === undefined
      ? result.chunks.map((c, seq): Operation => ({ op: "chunk", sid, seq, at: c.at, direction: c.direction, data: slice(c.data.length), size: c.data.length, sent: null, verdict: null }))
      : udp.datagrams.map(
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
    ...detected(sid, result),
    ...(result.error === undefined ? [] : [{ op: "event", sid, at: result.endedAt, kind: "capture", addon: null, hook: null, location: null, code: "replay-failed", message: result.error } as Operation]),
  ];
  const sum = (d: "up" | "down") => (udp?.datagrams ?? result.chunks).filter((c) => c.direction === d).reduce((n, c) => n + c.data.length, 0);
  ops.push({
    op: "close",
    sid,
    at: result.endedAt,
    status: result.completed ? "ok" : "failed",
    reason: result.completed ? "completed" : "request-failed",
    errno: null,
    upReceived: sum("up"),
    upSent: sum("up"),
    downReceived: sum("down"),
    downSent: sum("down"),
    captured: arena.length,
    truncated: false,
  });
  const batch: Batch = { seq: 1, ops, bytes: arena.length, ...(arena.length === 0 ? {} : { arena: arena.buffer.slice(arena.byteOffset, arena.byteOffset + arena.length) as ArrayBuffer }) };
  try {
    writer.write(batch);
  } finally {
    writer.stop(result.endedAt);
  }
  return sid;
}

/** What the client's first bytes say the protocol is, as the recorder would store it. */
function detected(sid: number, result: ClientReplayResult): Operation[] {
  if (result.udp !== undefined) return [];
  const sniffer = new ProtocolSniffer();
  for (const c of result.chunks) {
    if (c.direction !== "up") continue;
    const d = sniffer.push(c.data);
    if (d.kind === "need-more") continue;
    const stored = storedDetection(d);
    return stored === undefined ? [] : [{ op: "detected", sid, ...stored }];
  }
  return [];
}
