/**
 * The reader's paged reads (what the TUI uses on the relay's thread): pages of chunk and datagram
 * metadata in (seq, id) order from a key, both ways, by an index range; payload cut to a cap;
 * event pages with long messages cut; counts that stop at a cap.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-reader-pages-"));
const file = join(root, "pages.db");
let reader: CaptureReader;

beforeAll(() => {
  const db = openCapture(file);
  db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 1, 'h', '[]', 't')").run();
  const session = db.prepare(
    "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, command, status) VALUES (?, 1, ?, 0, '127.0.0.1', 1, '127.0.0.1', 2, ?, 'ok')",
  );
  session.run(1, 1, "connect");
  session.run(2, 2, "connect");
  session.run(3, 3, "udp");
  const chunk = db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size, sent, verdict) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  // Session 1: seq 0..9, inserted with seq 5 last (a chunk a slow hook recorded late); session 2 interleaved.
  for (const seq of [0, 1, 2, 3, 4, 6, 7, 8, 9, 5]) {
    chunk.run(
      1,
      seq,
      seq,
      seq % 2 === 0 ? "up" : "down",
      Buffer.alloc(100 + seq, 0x41 + seq),
      100 + seq,
      seq === 3 ? Buffer.from("replaced") : null,
      seq === 3 ? "replace" : null,
    );
    chunk.run(2, seq, seq, "down", Buffer.from(`two-${seq}`), 5, null, null);
  }
  chunk.run(1, 10, 10, "down", Buffer.alloc(0), 0, null, null);
  const datagram = db.prepare(
    "INSERT INTO datagrams (session_id, seq, at, direction, from_host, from_port, data, size, verdict) VALUES (3, ?, ?, 'up', '127.0.0.1', 9, ?, ?, 'relayed')",
  );
  for (let seq = 0; seq < 5; seq++) datagram.run(seq, seq, Buffer.alloc(10 * (seq + 1), 0x30 + seq), 10 * (seq + 1));
  const event = db.prepare("INSERT INTO events (session_id, run_id, at, kind, message) VALUES (?, 1, ?, 'addon-log', ?)");
  for (let i = 0; i < 7; i++) event.run(1, i, i === 6 ? "x".repeat(5000) : `event ${i}`);
  event.run(2, 0, "other");
  db.close();
  reader = new CaptureReader(file);
});
afterAll(() => {
  reader.close();
  rmSync(root, { recursive: true, force: true });
});

describe("CaptureReader pages", () => {
  it("pages chunk metadata forward and backward in (seq, id) order, only the session's rows, with stored lengths", () => {
    const first = reader.chunkMeta(1, { limit: 4 });
    expect(first.map((c) => c.seq)).toEqual([0, 1, 2, 3]);
    expect(first[3]).toMatchObject({ size: 103, dataBytes: 103, sentBytes: 8, verdict: "replace", direction: "down", session_id: 1 });
    expect(first[0]).toMatchObject({ sentBytes: null });
    const next = reader.chunkMeta(1, { after: first[3]!, limit: 100 });
    // The late-inserted seq 5 is in its place: the order is the engine's, not the insertion order.
    expect(next.map((c) => c.seq)).toEqual([4, 5, 6, 7, 8, 9, 10]);
    expect(next.at(-1)).toMatchObject({ dataBytes: 0, size: 0 });
    const back = reader.chunkMeta(1, { before: next[2]!, limit: 3 });
    expect(back.map((c) => c.seq)).toEqual([5, 4, 3]);
    expect(reader.chunkMeta(1, { before: { seq: 0, id: 0 }, limit: 3 })).toEqual([]);
    expect(reader.chunkMeta(2, { limit: 100 }).map((c) => c.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("reads payload by id, cut to the cap, all of it without one; an empty blob is an empty Buffer", () => {
    const meta = reader.chunkMeta(1, { limit: 100 });
    const ids = meta.map((c) => c.id);
    const cut = reader.chunkPayload(ids, 10);
    expect(cut.get(meta[0]!.id)!.data).toEqual(Buffer.alloc(10, 0x41));
    expect(cut.get(meta[3]!.id)!.sent).toEqual(Buffer.from("replaced"));
    expect(cut.get(meta[0]!.id)!.sent).toBeNull();
    expect(cut.get(meta[10]!.id)!.data).toEqual(Buffer.alloc(0));
    const whole = reader.chunkPayload([meta[9]!.id]);
    expect(whole.get(meta[9]!.id)!.data).toEqual(Buffer.alloc(109, 0x41 + 9));
  });

  it("walks the index, never the whole table, for pages and counts", () => {
    // The plan is what keeps a page's cost independent of the capture's size.
    const db = openCapture(file, { readonly: true });
    try {
      const plan = (sql: string) => (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((r) => r.detail).join("; ");
      expect(plan("SELECT id FROM chunks WHERE session_id = 1 AND (seq, id) > (3, 4) ORDER BY seq ASC, id ASC LIMIT 10")).toMatch(
        /USING (COVERING )?INDEX chunks_session/,
      );
      expect(plan("SELECT id FROM chunks WHERE session_id = 1 AND (seq, id) < (3, 4) ORDER BY seq DESC, id DESC LIMIT 10")).toMatch(
        /USING (COVERING )?INDEX chunks_session/,
      );
      expect(plan("SELECT id FROM chunks WHERE session_id = 1 AND (seq, id) < (3, 4) ORDER BY seq DESC, id DESC LIMIT 10")).not.toMatch(/TEMP B-TREE/);
      expect(plan("SELECT id FROM chunks WHERE session_id = 1 AND (seq, id) > (3, 4) ORDER BY seq ASC, id ASC LIMIT 10")).not.toMatch(/TEMP B-TREE/);
    } finally {
      db.close();
    }
  });

  it("pages datagrams with their facts and payload", () => {
    const meta = reader.datagramMeta(3, { limit: 2 });
    expect(meta.map((d) => [d.seq, d.dataBytes, d.from_host, d.verdict])).toEqual([
      [0, 10, "127.0.0.1", "relayed"],
      [1, 20, "127.0.0.1", "relayed"],
    ]);
    const rest = reader.datagramMeta(3, { after: meta[1]!, limit: 10 });
    expect(rest.map((d) => d.seq)).toEqual([2, 3, 4]);
    expect(reader.datagramPayload([rest[2]!.id], 3).get(rest[2]!.id)!.data).toEqual(Buffer.from("444"));
  });

  it("pages events by id both ways, cutting long messages", () => {
    const first = reader.eventPage(1, { limit: 3, cap: 100 });
    expect(first.map((e) => e.message)).toEqual(["event 0", "event 1", "event 2"]);
    const rest = reader.eventPage(1, { afterId: first[2]!.id, limit: 10, cap: 100 });
    expect(rest).toHaveLength(4);
    expect(rest[3]!.message).toBe(`${"x".repeat(100)}…`);
    expect(reader.eventPage(1, { beforeId: rest[0]!.id, limit: 2 }).map((e) => e.message)).toEqual(["event 2", "event 1"]);
  });

  it("counts rows up to a cap", () => {
    expect(reader.rowCount("chunks", 1, 1000)).toBe(11);
    expect(reader.rowCount("chunks", 1, 5)).toBe(5);
    expect(reader.rowCount("events", 1, 1000)).toBe(7);
    expect(reader.rowCount("datagrams", 3, 1000)).toBe(5);
  });
});
