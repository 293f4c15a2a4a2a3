/**
 * Datagram batches (schema 6): what the writer keeps as one row per session per flush comes back
 * from the reader, the `datagrams` view, the filter and prune as the datagrams that were
 * recorded, in their order, beside the datagrams that stay rows (recorded out of seq order, or
 * with their payload in the payload file).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { parseFilter } from "../../src/filter/index.js";
import { CaptureTransport } from "../../src/store/capture-transport.js";
import { BATCH_BYTES, BATCH_ROWS } from "../../src/store/datagram-batches.js";
import { beginRun, CaptureError, migrate, openCapture } from "../../src/store/database.js";
import { INLINE_MAX } from "../../src/store/payload-file.js";
import { pruneCapture } from "../../src/store/prune.js";
import { CaptureReader, type DatagramMeta } from "../../src/store/reader.js";
import type { DatagramRow } from "../../src/store/schema.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-batches-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A capture file with one run begun (optionally made at an older schema first) and a transport writing it. */
function transportOn(prepare?: (db: Database.Database) => void): { file: string; base: number; transport: CaptureTransport } {
  const file = join(root, `b${++counter}.db`);
  if (prepare !== undefined) {
    const old = new Database(file);
    prepare(old);
    old.close();
  }
  const db = openCapture(file);
  const run = beginRun(db, file, { listen: [], version: "test", now: 1000 });
  db.close();
  const transport = new CaptureTransport(file, run.runId, { now: () => 2000, beforeFlush: () => {}, failed: () => {} });
  return { file, base: run.sessionBase, transport };
}

/** What a test records for one datagram (the reader's row without its id). */
type Expected = Omit<DatagramRow, "id">;

function datagram(sid: number, seq: number, over: Partial<Expected> = {}): Expected {
  const up = seq % 2 === 0;
  return {
    session_id: sid,
    seq,
    at: 5000 + seq * 3,
    direction: up ? "up" : "down",
    peer_type: "ipv4",
    peer_host: "127.0.0.9",
    peer_port: 53,
    from_host: up ? "127.0.0.1" : "127.0.0.9",
    from_port: up ? 40000 : 53,
    to_host: up ? "127.0.0.9" : "127.0.0.1",
    to_port: up ? 53 : 40000,
    data: Buffer.from(`s${sid}-d${seq}`),
    size: `s${sid}-d${seq}`.length,
    sent: null,
    verdict: "relayed",
    reason: null,
    detail: null,
    ...over,
  };
}

function record(transport: CaptureTransport, d: Expected): void {
  transport.datagram(
    d.session_id,
    d.seq,
    d.at,
    d.direction === "down",
    d.data,
    d.data.length,
    d.sent ?? undefined,
    d.sent?.length ?? 0,
    d.verdict,
    d.peer_type,
    d.peer_host,
    d.peer_port,
    d.from_host,
    d.from_port,
    d.to_host,
    d.to_port,
    d.reason,
    d.detail,
  );
}

function withoutId(row: DatagramRow): Expected {
  const { id: _id, ...rest } = row;
  return rest;
}

const bySeq = (a: { seq: number; id: number }, b: { seq: number; id: number }) => a.seq - b.seq || a.id - b.id;

describe("datagram batches", () => {
  it("keep a session's datagrams beside its rows: the reader, its pages and the view give back what was recorded", async () => {
    const { file, base, transport } = transportOn();
    const a = base + 1;
    const b = base + 2;
    transport.sessionOpen(a, 1, 1000, "127.0.0.1", 40000, "127.0.0.1", 1080);
    transport.sessionOpen(b, 2, 1000, "127.0.0.1", 40001, "127.0.0.1", 1080);
    const recorded: Expected[] = [];
    const add = (d: Expected) => {
      record(transport, d);
      recorded.push(d);
    };
    for (let seq = 0; seq < 10; seq++) {
      add(datagram(a, seq));
      if (seq < 6) add(datagram(b, seq));
    }
    transport.flush();
    add(datagram(a, 12));
    // Recorded after seq 12 (a slow hook let it go later): a row, not part of a batch.
    add(datagram(a, 10));
    add(datagram(a, 11, { verdict: "dropped", reason: "hook", detail: "dropped by a hook", to_host: null, to_port: null }));
    add(datagram(a, 13, { sent: Buffer.from("rewritten by a hook") }));
    // Over INLINE_MAX: its payload goes to the payload file, so it is a row.
    add(datagram(a, 14, { data: Buffer.alloc(INLINE_MAX + 1, 0x5a), size: INLINE_MAX + 1 }));
    for (let seq = 15; seq < 21; seq++) add(datagram(a, seq, seq === 17 ? { data: Buffer.alloc(0), size: 0 } : {}));
    await transport.close();

    const reader = new CaptureReader(file);
    const db = new Database(file, { readonly: true });
    try {
      // Rows only for what could not be batched; the rest is in batches.
      expect(db.prepare("SELECT seq FROM datagram_rows WHERE session_id = ? ORDER BY seq").all(a)).toEqual([{ seq: 10 }, { seq: 11 }, { seq: 14 }]);
      expect((db.prepare("SELECT count(*) AS n FROM datagram_batches").get() as { n: number }).n).toBeGreaterThanOrEqual(3);

      // In the order of recording, every column as recorded.
      const rowsA = [...reader.datagrams(a)];
      expect(rowsA.map(withoutId)).toEqual(recorded.filter((d) => d.session_id === a));
      expect(rowsA.every((row, i) => i === 0 || row.id > rowsA[i - 1]!.id)).toBe(true);
      expect([...reader.datagrams(b)].map(withoutId)).toEqual(recorded.filter((d) => d.session_id === b));

      // The view: the same rows, for `sqlite3` users (the payload-file row keeps its place columns).
      const view = db.prepare("SELECT * FROM datagrams WHERE session_id = ? ORDER BY id").all(a) as (DatagramRow & {
        payload_at: number | null;
        payload_data: number | null;
        payload_sent: number | null;
      })[];
      expect(view.map((v) => v.id)).toEqual(rowsA.map((r) => r.id));
      view.forEach((v, i) => {
        const { payload_at, payload_data: _d, payload_sent: _s, ...row } = v;
        if (payload_at !== null) return expect(rowsA[i]!.seq).toBe(14);
        expect({ ...row, data: Buffer.from(row.data) }).toEqual(rowsA[i]);
      });

      // Pages in (seq, id) order, forward and back, across rows and batches.
      const all = [...rowsA].sort(bySeq);
      const forward: DatagramMeta[] = [];
      for (let page = reader.datagramMeta(a, { limit: 3 }); page.length > 0; page = reader.datagramMeta(a, { after: page.at(-1)!, limit: 3 })) {
        expect(page.length).toBeLessThanOrEqual(3);
        forward.push(...page);
      }
      expect(forward.map((m) => m.seq)).toEqual(all.map((r) => r.seq));
      expect(forward.map((m) => m.id)).toEqual(all.map((r) => r.id));
      const m13 = forward.find((m) => m.seq === 13)!;
      expect(m13).toMatchObject({ dataBytes: `s${a}-d13`.length, sentBytes: "rewritten by a hook".length, verdict: "relayed" });
      expect(forward.find((m) => m.seq === 11)).toMatchObject({ reason: "hook", detail: "dropped by a hook", to_host: null, sentBytes: null });
      const backward: DatagramMeta[] = [];
      const last = { seq: Number.MAX_SAFE_INTEGER, id: Number.MAX_SAFE_INTEGER };
      for (let page = reader.datagramMeta(a, { before: last, limit: 4 }); page.length > 0; page = reader.datagramMeta(a, { before: page.at(-1)!, limit: 4 })) {
        backward.push(...page);
      }
      expect(backward.map((m) => m.id)).toEqual(all.map((r) => r.id).reverse());
      expect(reader.datagramMeta(a, { after: forward[9]!, limit: 2 }).map((m) => m.seq)).toEqual([10, 11]);
      expect(reader.datagramMeta(a, { before: forward[12]!, limit: 2 }).map((m) => m.seq)).toEqual([11, 10]);

      // Payload by id, cut to a cap or whole; ids of other sessions' batches are found too.
      const ids = all.map((r) => r.id);
      const cut = reader.datagramPayload(ids, 4);
      for (const row of all) {
        expect(cut.get(row.id)!.data).toEqual(row.data.subarray(0, 4));
        expect(cut.get(row.id)!.sent).toEqual(row.sent === null ? null : row.sent.subarray(0, 4));
      }
      const whole = reader.datagramPayload([ids[13]!, [...reader.datagrams(b)][2]!.id]);
      expect(whole.get(ids[13]!)!.sent).toEqual(Buffer.from("rewritten by a hook"));
      expect([...whole.values()][1]!.data).toEqual(Buffer.from(`s${b}-d2`));
      expect(reader.datagramPayload([999_999]).size).toBe(0);

      expect(reader.rowCount("datagrams", a, 1000)).toBe(rowsA.length);
      expect(reader.rowCount("datagrams", a, 5)).toBe(5);
    } finally {
      db.close();
      reader.close();
    }
  });

  it("end a batch at BATCH_ROWS datagrams or BATCH_BYTES of payload", async () => {
    const { file, base, transport } = transportOn();
    const sid = base + 1;
    transport.sessionOpen(sid, 1, 1000, "127.0.0.1", 40000, "127.0.0.1", 1080);
    const small = BATCH_ROWS + 10;
    for (let seq = 0; seq < small; seq++) record(transport, datagram(sid, seq));
    transport.flush();
    const big = Buffer.alloc(3000, 0x42);
    for (let seq = small; seq < small + 25; seq++) record(transport, datagram(sid, seq, { data: big, size: big.length }));
    await transport.close();
    const db = new Database(file, { readonly: true });
    try {
      const batches = db.prepare("SELECT count, length(payload) AS bytes FROM datagram_batches ORDER BY first_id").all() as { count: number; bytes: number }[];
      const perBatch = Math.floor(BATCH_BYTES / big.length);
      expect(batches.map((x) => x.count)).toEqual([BATCH_ROWS, 10, perBatch, perBatch, 25 - 2 * perBatch]);
      expect(Math.max(...batches.map((x) => x.bytes))).toBeLessThanOrEqual(BATCH_BYTES);
    } finally {
      db.close();
    }
    const reader = new CaptureReader(file);
    try {
      expect([...reader.datagrams(sid)].map((r) => r.seq)).toEqual(Array.from({ length: small + 25 }, (_, i) => i));
    } finally {
      reader.close();
    }
  });

  it("a damaged batch is an error of the read, with the batch named", async () => {
    const { file, base, transport } = transportOn();
    const sid = base + 1;
    transport.sessionOpen(sid, 1, 1000, "127.0.0.1", 40000, "127.0.0.1", 1080);
    for (let seq = 0; seq < 4; seq++) record(transport, datagram(sid, seq));
    await transport.close();
    const db = new Database(file);
    const firstId = (db.prepare("SELECT first_id FROM datagram_batches").get() as { first_id: number }).first_id;
    db.prepare("UPDATE datagram_batches SET items = '[[0,0,7,1,0,1]]', count = 1").run();
    db.close();
    const reader = new CaptureReader(file);
    try {
      expect(() => reader.datagramMeta(sid, { limit: 10 })).toThrow(CaptureError);
      expect(() => [...reader.datagrams(sid)]).toThrow(new RegExp(`datagram batch ${firstId} is damaged: shape 7 of 2`));
      expect(() => reader.datagramPayload([firstId])).toThrow(/damaged/);
    } finally {
      reader.close();
    }
  });

  it("a file of schema 5 keeps its datagram rows; new datagrams take ids after them; the view takes inserts", async () => {
    const { file, base, transport } = transportOn((db) => {
      migrate(db, "old", 5);
      db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 1, 'h', '[]', 'old')").run();
      db.prepare(
        "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, command, status) VALUES (1, 1, 1, 0, 'c', 1, 'l', 2, 'udp', 'ok')",
      ).run();
      const old = db.prepare(
        "INSERT INTO datagrams (id, session_id, seq, at, direction, from_host, from_port, data, size, verdict) VALUES (?, 1, ?, ?, 'up', '127.0.0.1', 9, ?, 1, 'relayed')",
      );
      for (let seq = 0; seq < 3; seq++) old.run(100 + seq, seq, seq, Buffer.from([seq]));
    });
    const sid = base + 1;
    transport.sessionOpen(sid, 1, 1000, "127.0.0.1", 40000, "127.0.0.1", 1080);
    for (let seq = 0; seq < 3; seq++) record(transport, datagram(sid, seq));
    await transport.close();
    const reader = new CaptureReader(file);
    try {
      expect([...reader.datagrams(1)].map((r) => [r.id, r.seq, r.data[0]])).toEqual([
        [100, 0, 0],
        [101, 1, 1],
        [102, 2, 2],
      ]);
      expect([...reader.datagrams(sid)].map((r) => r.id)).toEqual([103, 104, 105]);
    } finally {
      reader.close();
    }
    const db = openCapture(file);
    try {
      db.prepare(
        "INSERT INTO datagrams (session_id, seq, at, direction, from_host, from_port, data, size, verdict) VALUES (1, 3, 3, 'up', 'x', 1, x'03', 1, 'relayed')",
      ).run();
      expect(db.prepare("SELECT id, seq FROM datagrams WHERE session_id = 1 ORDER BY id").all()).toEqual([
        { id: 100, seq: 0 },
        { id: 101, seq: 1 },
        { id: 102, seq: 2 },
        { id: 106, seq: 3 },
      ]);
    } finally {
      db.close();
    }
  });

  it("the filter finds payload inside batches (as received and as sent), and prune deletes a session's batches", async () => {
    const { file, base, transport } = transportOn();
    const [a, b, c] = [base + 1, base + 2, base + 3];
    for (const sid of [a, b, c]) transport.sessionOpen(sid, sid - base, 1000, "127.0.0.1", 40000, "127.0.0.1", 1080);
    for (let seq = 0; seq < 20; seq++) {
      record(transport, datagram(a, seq, seq === 7 ? { data: Buffer.from("xx needle-in-data xx") } : {}));
      record(transport, datagram(b, seq, seq === 15 ? { sent: Buffer.from("needle-in-sent") } : {}));
      record(transport, datagram(c, seq));
    }
    await transport.close();
    const reader = new CaptureReader(file);
    try {
      expect(reader.sessions({ filter: "~needle-in-data", order: "oldest" }).map((s) => s.id)).toEqual([a]);
      expect(reader.sessions({ filter: "~needle-in-sent", order: "oldest" }).map((s) => s.id)).toEqual([b]);
      expect(reader.sessions({ filter: "~needle", order: "oldest" }).map((s) => s.id)).toEqual([a, b]);
    } finally {
      reader.close();
    }
    const result = pruneCapture(file, { filter: parseFilter("~needle") });
    expect(result.sessions).toBe(2);
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare("SELECT DISTINCT session_id FROM datagram_batches").all()).toEqual([{ session_id: c }]);
      expect((db.prepare("SELECT count(*) AS n FROM datagrams").get() as { n: number }).n).toBe(20);
    } finally {
      db.close();
    }
  });
});
