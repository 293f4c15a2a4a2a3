/**
 * Large payloads written once, to the payload file beside the capture (store/payload-file.ts):
 * where the writer puts them, that every reader gets them back byte for byte (rows, pages with a
 * cap, the `~` filter, exports), what kill -9 between append and commit leaves, a missing or cut
 * payload file, a full disk, and a file from before (schema 4) written to again.
 */
import { appendFileSync, existsSync, mkdtempSync, rmSync, statSync, truncateSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import type { Batch, Operation } from "../../src/store/batch.js";
import { beginRun, CaptureError, migrate, openCapture } from "../../src/store/database.js";
import { INLINE_MAX, payloadFileOf } from "../../src/store/payload-file.js";
import { CaptureReader } from "../../src/store/reader.js";
import { CaptureWriter } from "../../src/store/writer.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-payload-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A new capture file with run 1 begun and one session (id 1) open. */
function newCapture(): { file: string; writer: CaptureWriter; runId: number } {
  const file = join(root, `p${++counter}.db`);
  const db = openCapture(file);
  const { runId } = beginRun(db, file, { listen: [], version: "test", now: 1 });
  db.close();
  const writer = new CaptureWriter(file, runId);
  writer.write({
    seq: 1,
    bytes: 0,
    ops: [{ op: "open", sid: 1, engineId: 1, at: 1, clientHost: "127.0.0.1", clientPort: 1, localHost: "127.0.0.1", localPort: 2 }],
  });
  return { file, writer, runId };
}

/** Bytes that say where they are, so a shifted or mixed-up slice cannot pass for the right one. */
function pattern(length: number, salt: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + salt * 31 + (i >> 8)) & 0xff;
  return out;
}

let batchSeq = 10;
/** One batch of chunk records, each [direction, data, sent], their payload packed in one arena as the recorder does. */
function chunkBatch(start: number, rows: ReadonlyArray<readonly [direction: "up" | "down", data: Buffer, sent: Buffer | null]>): Batch {
  const arena = Buffer.alloc(rows.reduce((n, [, d, s]) => n + d.length + (s?.length ?? 0), 0));
  let used = 0;
  const put = (b: Buffer) => {
    b.copy(arena, used);
    used += b.length;
    return { offset: used - b.length, length: b.length };
  };
  const ops: Operation[] = rows.map(([direction, data, sent], i) => ({
    op: "chunk",
    sid: 1,
    seq: start + i,
    at: start + i,
    direction,
    data: put(data),
    size: data.length,
    sent: sent === null ? null : put(sent),
    verdict: sent === null ? null : "replace",
  }));
  return { seq: ++batchSeq, ops, bytes: used, arena: arena.buffer.slice(arena.byteOffset, arena.byteOffset + arena.length) as ArrayBuffer };
}

describe("the payload file", () => {
  const big = pattern(1_200_000, 1);
  const bigSent = pattern(9_000, 2);
  const small = pattern(INLINE_MAX, 3);
  const edge = pattern(INLINE_MAX + 1, 4);

  it("holds rows over INLINE_MAX once, the database only their place; readers get every row back byte for byte", () => {
    const { file, writer } = newCapture();
    writer.write(
      chunkBatch(0, [
        ["up", small, null],
        ["down", big, null],
        ["down", edge, null],
        ["up", pattern(100, 5), bigSent],
      ]),
    );
    writer.stop(5);

    // Written once: the payload file is exactly the large rows' bytes, and the database holds none of them.
    expect(statSync(payloadFileOf(file)).size).toBe(big.length + edge.length + 100 + bigSent.length);
    expect(statSync(payloadFileOf(file)).mode & 0o777).toBe(0o600);
    expect(existsSync(`${file}-wal`)).toBe(false);
    // A few pages per table and index, none holding the large rows.
    expect(statSync(file).size).toBeLessThanOrEqual(32 * 4096);
    expect(statSync(file).size).toBeLessThan(big.length + edge.length + bigSent.length);
    const db = new Database(file, { readonly: true });
    const stored = db
      .prepare("SELECT seq, length(data) AS inline, sent IS NULL AS unchanged, payload_at, payload_data, payload_sent FROM chunks ORDER BY seq")
      .all();
    db.close();
    expect(stored).toEqual([
      { seq: 0, inline: INLINE_MAX, unchanged: 1, payload_at: null, payload_data: null, payload_sent: null },
      { seq: 1, inline: 0, unchanged: 1, payload_at: 0, payload_data: big.length, payload_sent: null },
      { seq: 2, inline: 0, unchanged: 1, payload_at: big.length, payload_data: edge.length, payload_sent: null },
      { seq: 3, inline: 0, unchanged: 0, payload_at: big.length + edge.length, payload_data: 100, payload_sent: bigSent.length },
    ]);

    const reader = new CaptureReader(file);
    try {
      const rows = [...reader.chunks(1)];
      expect(rows.map((r) => [r.data.equals([small, big, edge, pattern(100, 5)][r.seq]!), r.sent === null ? null : r.sent.equals(bigSent)])).toEqual([
        [true, null],
        [true, null],
        [true, null],
        [true, true],
      ]);
      expect(Object.keys(rows[1]!)).not.toContain("payload_at");
      const meta = reader.chunkMeta(1, { limit: 10 });
      expect(meta.map((m) => [m.dataBytes, m.sentBytes])).toEqual([
        [INLINE_MAX, null],
        [big.length, null],
        [edge.length, null],
        [100, bigSent.length],
      ]);
      const capped = reader.chunkPayload(
        meta.map((m) => m.id),
        50,
      );
      expect(capped.get(meta[1]!.id)!.data.equals(big.subarray(0, 50))).toBe(true);
      expect(capped.get(meta[3]!.id)!.sent!.equals(bigSent.subarray(0, 50))).toBe(true);
      const whole = reader.chunkPayload([meta[3]!.id]).get(meta[3]!.id)!;
      expect(whole.data.equals(pattern(100, 5)) && whole.sent!.equals(bigSent)).toBe(true);
      expect(reader.stats().fileBytes).toBeGreaterThanOrEqual(statSync(payloadFileOf(file)).size);
    } finally {
      reader.close();
    }
  });

  it("answers `~` filters from the payload file, in data and in sent bytes", () => {
    const { file, writer } = newCapture();
    const needle = Buffer.concat([pattern(50_000, 6), Buffer.from("NEEDLE-in-a-big-read"), pattern(50_000, 7)]);
    const sent = Buffer.concat([pattern(6_000, 8), Buffer.from("rewritten-HAYSTACK")]);
    writer.write(chunkBatch(0, [["down", needle, null]]));
    writer.write(chunkBatch(1, [["up", pattern(10, 9), sent]]));
    writer.stop(5);
    const reader = new CaptureReader(file);
    try {
      expect(reader.count({ filter: "~NEEDLE-in-a" })).toBe(1);
      expect(reader.count({ filter: "~HAYSTACK" })).toBe(1);
      expect(reader.count({ filter: "~not-there-at-all" })).toBe(0);
    } finally {
      reader.close();
    }
  });

  it("after kill -9 between the append and the commit, the next writer cuts the bytes no row refers to and appends after the rest", () => {
    const { file, writer, runId } = newCapture();
    writer.write(chunkBatch(0, [["down", big, null]]));
    writer.abandon();
    // What a batch appended before the process died, with its transaction never committed.
    appendFileSync(payloadFileOf(file), pattern(70_000, 10));
    const again = new CaptureWriter(file, runId);
    expect(statSync(payloadFileOf(file)).size).toBe(big.length);
    again.write(chunkBatch(1, [["up", edge, null]]));
    again.stop(9);
    expect(statSync(payloadFileOf(file)).size).toBe(big.length + edge.length);
    const reader = new CaptureReader(file);
    try {
      const rows = [...reader.chunks(1)];
      expect(rows.map((r) => r.data.length)).toEqual([big.length, edge.length]);
      expect(rows[0]!.data.equals(big) && rows[1]!.data.equals(edge)).toBe(true);
    } finally {
      reader.close();
    }
  });

  it("a missing or cut payload file is a CaptureError that names it, for readers and writers", () => {
    const { file, writer, runId } = newCapture();
    writer.write(chunkBatch(0, [["down", big, null]]));
    writer.stop(5);
    truncateSync(payloadFileOf(file), 1000);
    let reader = new CaptureReader(file);
    try {
      expect(() => [...reader.chunks(1)]).toThrow(CaptureError);
      expect(() => [...reader.chunks(1)]).toThrow(/-payload ends before byte 1200000 .*cut or replaced/);
      // Metadata still reads: the session list does not need the payload.
      expect(reader.sessions()).toHaveLength(1);
    } finally {
      reader.close();
    }
    expect(() => new CaptureWriter(file, runId)).toThrow(/shorter \(1000 bytes\) than its capture says \(1200000\)/);
    unlinkSync(payloadFileOf(file));
    reader = new CaptureReader(file);
    try {
      expect(() => reader.chunkPayload([1])).toThrow(/-payload is missing \(keep it beside the capture file/);
    } finally {
      reader.close();
    }
  });

  it("a full disk under the payload file fails the batch: no row points at bytes that were not written", () => {
    const file = join(root, "full.db");
    const db = openCapture(file);
    const { runId } = beginRun(db, file, { listen: [], version: "test", now: 1 });
    db.close();
    // 460 pages of 4 KiB: the payload file may hold 1,840 KiB, one big row (1,200,000 bytes) but not two.
    const writer = new CaptureWriter(file, runId, { maxPageCount: 460 });
    writer.write({
      seq: 1,
      bytes: 0,
      ops: [{ op: "open", sid: 1, engineId: 1, at: 1, clientHost: "127.0.0.1", clientPort: 1, localHost: "127.0.0.1", localPort: 2 }],
    });
    writer.write(chunkBatch(0, [["down", big, null]]));
    expect(() => writer.write(chunkBatch(1, [["down", big, null]]))).toThrow(expect.objectContaining({ code: "ENOSPC" }));
    writer.abandon();
    const reader = new CaptureReader(file);
    try {
      expect([...reader.chunks(1)].map((r) => r.data.equals(big))).toEqual([true]);
    } finally {
      reader.close();
    }
  });

  it("a schema 4 file (payload inline) upgrades: its rows read as before, new large rows go to the payload file", () => {
    const file = join(root, "schema4.db");
    // A schema 4 file, as the last version wrote it: migrated to 4 only, payload inline.
    const four = new Database(file);
    four.pragma("journal_mode = WAL");
    migrate(four, file, 4);
    four.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 1, 'h', '[]', 'old')").run();
    four
      .prepare(
        "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, status) VALUES (1, 1, 1, 0, '::1', 1, '::1', 2, 'ok')",
      )
      .run();
    four.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size) VALUES (1, 0, 0, 'down', ?, ?)").run(big, big.length);
    four.close();

    const upgraded = openCapture(file);
    const { runId } = beginRun(upgraded, file, { listen: [], version: "test", now: 2 });
    upgraded.close();
    const writer = new CaptureWriter(file, runId);
    writer.write(chunkBatch(1, [["up", edge, null]]));
    writer.stop(3);
    expect(statSync(payloadFileOf(file)).size).toBe(edge.length);
    const reader = new CaptureReader(file);
    try {
      const rows = [...reader.chunks(1)];
      expect(rows[0]!.data.equals(big) && rows[1]!.data.equals(edge)).toBe(true);
      expect(reader.chunkMeta(1, { limit: 5 }).map((m) => m.dataBytes)).toEqual([big.length, edge.length]);
    } finally {
      reader.close();
    }
  });

  it("stores large datagrams the same way", () => {
    const { file, writer } = newCapture();
    const datagram = pattern(9_000, 11);
    const arena = new Uint8Array(datagram).buffer;
    writer.write({
      seq: 2,
      bytes: datagram.length,
      arena,
      ops: [
        {
          op: "datagram",
          sid: 1,
          seq: 0,
          at: 1,
          direction: "up",
          peerType: "ipv4",
          peerHost: "127.0.0.1",
          peerPort: 53,
          fromHost: "127.0.0.1",
          fromPort: 5000,
          toHost: "127.0.0.1",
          toPort: 53,
          data: { offset: 0, length: datagram.length },
          size: datagram.length,
          sent: null,
          verdict: "relayed",
          reason: null,
          detail: null,
        },
      ],
    });
    writer.stop(2);
    expect(statSync(payloadFileOf(file)).size).toBe(datagram.length);
    const reader = new CaptureReader(file);
    try {
      const [row] = [...reader.datagrams(1)];
      expect(row!.data.equals(datagram)).toBe(true);
      const [meta] = reader.datagramMeta(1, { limit: 1 });
      expect(meta!.dataBytes).toBe(datagram.length);
      expect(reader.datagramPayload([meta!.id], 10).get(meta!.id)!.data.equals(datagram.subarray(0, 10))).toBe(true);
    } finally {
      reader.close();
    }
  });
});
