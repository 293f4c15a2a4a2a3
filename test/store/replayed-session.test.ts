/**
 * A replay written as a session of its own (store/replayed-session.ts), read back with the
 * reader: its facts, its bytes, its link to the replayed session and its detected protocol.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { beginRun, openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { CaptureWriter } from "../../src/store/writer.js";
import { writeReplayedSession, type ReplayedSession } from "../../src/store/replayed-session.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-replayed-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A new capture file holding one recorded session (the one replayed), id 1. */
function fileWithOriginal(): string {
  const file = join(root, `r${++counter}.db`);
  const db = openCapture(file);
  const run = beginRun(db, file, { listen: [], version: "test", now: 500 });
  db.close();
  const writer = new CaptureWriter(file, run.runId);
  const sid = run.sessionBase + 1;
  writer.write({
    seq: 1,
    bytes: 0,
    ops: [{ op: "open", sid, engineId: 1, at: 500, clientHost: "127.0.0.1", clientPort: 39000, localHost: "127.0.0.1", localPort: 1080 }],
  });
  writer.stop(600);
  return file;
}

/** Writes the replay of session 1 into a new file and reads it back. */
function written(replay: ReplayedSession): { id: number; read<T>(f: (reader: CaptureReader) => T): T } {
  const file = fileWithOriginal();
  const id = writeReplayedSession(file, replay, "test");
  return {
    id,
    read: (f) => {
      const reader = new CaptureReader(file);
      try {
        return f(reader);
      } finally {
        reader.close();
      }
    },
  };
}

const base = {
  original: { id: 1, version: "5" as const, requested_type: "domain" },
  target: { host: "example.test", port: 80 },
  local: { host: "127.0.0.1", port: 40000 },
  startedAt: 1_000,
  endedAt: 2_000,
};

describe("writeReplayedSession", () => {
  it("TCP: a connect session linked to the replayed one, with its bytes both ways, counters and the protocol of its first bytes", () => {
    const request = Buffer.from("GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n");
    const answer = Buffer.from("HTTP/1.1 200 OK\r\n\r\n");
    const { id, read } = written({
      ...base,
      completed: true,
      chunks: [
        { direction: "up", at: 1_100, data: request },
        { direction: "down", at: 1_200, data: answer },
      ],
    });
    read((reader) => {
      expect(reader.session(id)).toMatchObject({
        command: "connect",
        version: "5",
        requested_type: "domain",
        requested_host: "example.test",
        requested_port: 80,
        client_host: "127.0.0.1",
        client_port: 40000,
        local_host: "example.test",
        status: "ok",
        close_reason: "completed",
        replay_of: 1,
        bytes_up_received: request.length,
        bytes_down_sent: answer.length,
        captured_bytes: request.length + answer.length,
        protocol: "http",
        sni: "example.test",
      });
      const chunks = [...reader.chunks(id)];
      expect(chunks.map((c) => [c.direction, c.data.toString()])).toEqual([
        ["up", request.toString()],
        ["down", answer.toString()],
      ]);
    });
  });

  it("a replay that failed is a failed session with its error as a capture event; through a proxy, the proxy is its local end", () => {
    const { id, read } = written({ ...base, via: { host: "127.0.0.1", port: 1080 }, completed: false, error: "connect ECONNREFUSED", chunks: [] });
    read((reader) => {
      expect(reader.session(id)).toMatchObject({ status: "failed", close_reason: "request-failed", reply: 1, local_port: 1080, replay_of: 1, protocol: null });
      expect(reader.events(id)).toEqual([expect.objectContaining({ kind: "capture", code: "replay-failed", message: "connect ECONNREFUSED" })]);
    });
  });

  it("UDP: an association whose datagrams went to and came from their peers (chunks are not written)", () => {
    const peer = { host: "127.0.0.2", port: 53 };
    const { id, read } = written({
      ...base,
      completed: true,
      chunks: [{ direction: "up", at: 1_050, data: Buffer.from("ignored") }],
      datagrams: [
        { direction: "up", at: 1_100, peer, data: Buffer.from("question") },
        { direction: "down", at: 1_200, peer, data: Buffer.from("answer") },
      ],
    });
    read((reader) => {
      const udp = { command: "udp", requested_host: "0.0.0.0", status: "ok", replay_of: 1, bytes_up_sent: 8, bytes_down_received: 6 };
      expect(reader.session(id)).toMatchObject(udp);
      expect([...reader.chunks(id)]).toEqual([]);
      const datagrams = [...reader.datagrams(id)];
      expect(datagrams.map((d) => [d.direction, d.from_host, d.to_host, d.data.toString()])).toEqual([
        ["up", "127.0.0.1", "127.0.0.2", "question"],
        ["down", "127.0.0.2", "127.0.0.1", "answer"],
      ]);
    });
  });
});
