/**
 * The transport to the writer thread on its own (no engine, no recorder): operations and payload
 * in, a capture file out, and the budget that makes a TCP caller wait.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CaptureTransport, type TransportOptions } from "../../src/store/capture-transport.js";
import { BATCH_ROWS } from "../../src/store/datagram-batches.js";
import { beginRun, openCapture, type CaptureError } from "../../src/store/database.js";
import { payloadFileOf } from "../../src/store/payload-file.js";
import { CaptureReader } from "../../src/store/reader.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-transport-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A new capture file with one run begun; the transport writes that run. */
function transportOn(options: Partial<TransportOptions> = {}): { file: string; sid: number; transport: CaptureTransport } {
  const file = join(root, `t${++counter}.db`);
  const db = openCapture(file);
  const run = beginRun(db, file, { listen: [], version: "test", now: 1000 });
  db.close();
  const transport = new CaptureTransport(file, run.runId, { now: () => 2000, beforeFlush: () => {}, failed: () => {}, ...options });
  return { file, sid: run.sessionBase + 1, transport };
}

function open(transport: CaptureTransport, sid: number): void {
  transport.push({ op: "open", sid, engineId: 1, at: 1000, clientHost: "127.0.0.1", clientPort: 40000, localHost: "127.0.0.1", localPort: 1080 });
}

function chunk(transport: CaptureTransport, sid: number, seq: number, bytes: Buffer): void {
  const data = transport.copy(bytes, bytes.length);
  transport.push({ op: "chunk", sid, seq, at: 1000 + seq, direction: "up", data, size: bytes.length, sent: null, verdict: null });
}

describe("CaptureTransport", () => {
  it("asks a caller to wait only over the high-water mark, releases it once the writer caught up, and writes every byte", async () => {
    const highWaterBytes = 256 * 1024;
    let flushes = 0;
    const { file, sid, transport } = transportOn({ highWaterBytes, beforeFlush: () => void flushes++ });
    open(transport, sid);
    const waits: Array<Promise<void> | undefined> = [];
    const sent: Buffer[] = [];
    for (let seq = 0; seq < 16; seq++) {
      const bytes = Buffer.alloc(32 * 1024, seq);
      sent.push(bytes);
      chunk(transport, sid, seq, bytes);
      waits.push(transport.commitOrWait());
    }
    // 7 chunks of 32 KiB (and their operations) fit under 256 KiB; the 8th goes over it.
    expect(waits.slice(0, 7).every((w) => w === undefined)).toBe(true);
    expect(waits[7]).toBeInstanceOf(Promise);
    // One promise for everyone waiting at once.
    expect(new Set(waits.filter((w) => w !== undefined)).size).toBe(1);
    await waits[7];
    expect(transport.held).toBeLessThanOrEqual(highWaterBytes / 2);
    expect(flushes).toBeGreaterThan(0);
    expect(transport.maxHeld).toBeGreaterThan(highWaterBytes);
    await transport.close();
    expect(transport.capturing).toBe(false);
    const reader = new CaptureReader(file);
    try {
      expect(Buffer.concat([...reader.chunks(sid)].map((c) => c.data)).equals(Buffer.concat(sent))).toBe(true);
    } finally {
      reader.close();
    }
  });

  it("records come back as rows, byte for byte and in order: long runs, mixed tables, session records between, nulls, hooks' bytes, large payloads", async () => {
    const { file, sid, transport } = transportOn();
    transport.sessionOpen(sid, 1, 1000, "127.0.0.1", 40000, "::1", 1080);
    transport.sessionAuth(sid, "5", "none", "[0,2]", null);
    transport.sessionRequest(sid, 1000.5, "5", "udp", "ipv4", "0.0.0.0", 0, null);
    transport.sessionReply(sid, 1000.75, 0, null, null, "127.0.0.1", 5555, null, null, "10.0.0.1", null, null, null);
    // A second session, opened and closed among the first one's records with nothing else naming it.
    const other = sid + 1;
    transport.sessionOpen(other, 2, 1001, "10.1.1.1", 41000, "127.0.0.1", 1080);
    transport.sessionAuth(other, "5", "userpass", "[2]", "alice");
    transport.chunk(other, 0, 1001.5, false, Buffer.from("hello"), 5, undefined, 0, null);
    transport.sessionRequest(other, 1002, "5", "connect", "domain", "example.test", 443, null);
    const datagrams: { data: Buffer; sent: Buffer | null; peer: boolean; dropped: boolean }[] = [];
    const chunks: { data: Buffer; sent: Buffer | null }[] = [];
    const datagram = (i: number): void => {
      // Every fifth a hook changed, every seventh dropped (no destination), the 23rd large (payload file), the 31st without a peer.
      const data = i === 23 ? Buffer.alloc(6000, i) : Buffer.from(`datagram ${i}`);
      const sent = i % 5 === 0 ? Buffer.from(`changed ${i}`) : null;
      const dropped = i % 7 === 0;
      const peer = i !== 31;
      datagrams.push({ data, sent, peer, dropped });
      transport.datagram(
        sid,
        datagrams.length - 1,
        1000.25 + i,
        i % 2 === 1,
        data,
        data.length,
        sent ?? undefined,
        sent?.length ?? 0,
        dropped ? "dropped" : "relayed",
        peer ? "ipv4" : null,
        peer ? "10.0.0.1" : null,
        peer ? 53 : null,
        "127.0.0.1",
        40000 + i,
        dropped ? null : "10.0.0.1",
        dropped ? null : 53,
        dropped ? "denied" : null,
        dropped ? `datagram ${i} denied` : null,
      );
    };
    const chunk = (data: Buffer, sent: Buffer | null): void => {
      chunks.push({ data, sent });
      transport.chunk(
        sid,
        chunks.length - 1,
        2000 + chunks.length,
        chunks.length % 2 === 0,
        data,
        data.length,
        sent ?? undefined,
        sent?.length ?? 0,
        sent ? "replace" : null,
      );
    };
    for (let i = 0; i < 40; i++) {
      datagram(i);
      if (i === 20) transport.sessionProgress(sid, 1, 2, 3, 4, 5000, false, 0);
      if (i === 25) transport.sessionReply(other, 1003, 0, null, null, "0.0.0.0", 0, "93.184.216.34", 443, null, null, null, '["socks5://up:1080"]');
      if (i === 30) transport.sessionProgress(other, 5, 5, 0, 0, 5, false, 0);
    }
    transport.sessionClose(other, 1004, "ok", "completed", null, 5, 5, 7, 7, 12, false, 0);
    chunk(Buffer.from("between"), null);
    transport.push({
      op: "event",
      sid,
      at: 3000,
      kind: "capture",
      addon: null,
      hook: null,
      location: null,
      code: "test",
      message: "an operation between records",
    });
    for (let i = 40; i < 43; i++) datagram(i);
    // 3 MiB, then 0.5 + 1 MiB: the second's data fits the 4 MiB arena, its sent does not; both must go in the next one.
    chunk(Buffer.alloc(3 * 1024 * 1024, 3), null);
    chunk(Buffer.alloc(512 * 1024, 4), Buffer.alloc(1024 * 1024, 5));
    // Cut by a capture limit: the first 4 bytes as received, the first 3 as sent; size stays the received length.
    chunks.push({ data: Buffer.from("kept"), sent: Buffer.from("sen") });
    transport.chunk(sid, chunks.length - 1, 2000 + chunks.length, chunks.length % 2 === 0, Buffer.from("kept to 4"), 4, Buffer.from("sent to 3"), 3, "replace");
    transport.sessionClose(sid, 4000, "ok", "completed", "ECONNRESET", 10_000, 11_000, 12, 13, 14, true, 2);
    await transport.close();
    // The payload file holds the large rows' bytes and nothing else (session records' counts are not payload lengths).
    expect(statSync(payloadFileOf(file)).size).toBe(6000 + 3 * 1024 * 1024 + 512 * 1024 + 1024 * 1024);
    const reader = new CaptureReader(file);
    try {
      const rows = [...reader.datagrams(sid)];
      expect(rows.map((r) => r.seq)).toEqual(datagrams.map((_, i) => i));
      rows.forEach((row, i) => {
        const d = datagrams[i]!;
        expect(row.data.equals(d.data)).toBe(true);
        expect(row.sent === null ? d.sent === null : d.sent?.equals(row.sent)).toBe(true);
        expect(row).toMatchObject({
          session_id: sid,
          at: 1000.25 + i,
          direction: i % 2 === 1 ? "down" : "up",
          size: d.data.length,
          peer_type: d.peer ? "ipv4" : null,
          peer_host: d.peer ? "10.0.0.1" : null,
          peer_port: d.peer ? 53 : null,
          from_host: "127.0.0.1",
          from_port: 40000 + i,
          to_host: d.dropped ? null : "10.0.0.1",
          to_port: d.dropped ? null : 53,
          verdict: d.dropped ? "dropped" : "relayed",
          reason: d.dropped ? "denied" : null,
          detail: d.dropped ? `datagram ${i} denied` : null,
        });
      });
      const chunkRows = [...reader.chunks(sid)];
      expect(chunkRows.map((r) => r.seq)).toEqual(chunks.map((_, i) => i));
      chunkRows.forEach((row, i) => {
        expect(row.data.equals(chunks[i]!.data)).toBe(true);
        expect(row.sent === null ? chunks[i]!.sent === null : chunks[i]!.sent?.equals(row.sent)).toBe(true);
        const size = i === chunks.length - 1 ? 9 : chunks[i]!.data.length;
        expect(row).toMatchObject({ at: 2001 + i, direction: (i + 1) % 2 === 0 ? "down" : "up", size, verdict: chunks[i]!.sent ? "replace" : null });
      });
      expect(reader.events(sid).map((e) => e.code)).toEqual(["test"]);
      expect(reader.session(other)).toMatchObject({
        run_id: reader.session(sid)!.run_id,
        engine_id: 2,
        opened_at: 1001,
        client_host: "10.1.1.1",
        client_port: 41000,
        version: "5",
        auth_method: "userpass",
        auth_offered: "[2]",
        user: "alice",
        command: "connect",
        requested_type: "domain",
        requested_host: "example.test",
        requested_port: 443,
        requested_at: 1002,
        replied_at: 1003,
        reply: 0,
        bound_host: "0.0.0.0",
        target_host: "93.184.216.34",
        target_port: 443,
        remote_host: null,
        route: '["socks5://up:1080"]',
        closed_at: 1004,
        status: "ok",
        close_reason: "completed",
        close_errno: null,
        bytes_up_received: 5,
        bytes_down_sent: 7,
        captured_bytes: 12,
        truncated: 0,
        uncaptured_datagrams: 0,
        tags: "{}",
        protocol: null,
      });
      expect([...reader.chunks(other)].map((c) => c.data.toString())).toEqual(["hello"]);
      expect(reader.session(sid)).toMatchObject({
        engine_id: 1,
        opened_at: 1000,
        client_host: "127.0.0.1",
        client_port: 40000,
        local_host: "::1",
        local_port: 1080,
        version: "5",
        auth_method: "none",
        auth_offered: "[0,2]",
        user: null,
        command: "udp",
        requested_type: "ipv4",
        requested_host: "0.0.0.0",
        requested_port: 0,
        requested_at: 1000.5,
        replied_at: 1000.75,
        reply: 0,
        reply_code: null,
        bound_host: "127.0.0.1",
        bound_port: 5555,
        target_host: null,
        target_port: null,
        remote_host: "10.0.0.1",
        remote_port: null,
        closed_at: 4000,
        status: "ok",
        close_reason: "completed",
        close_errno: "ECONNRESET",
        bytes_up_received: 10_000,
        bytes_up_sent: 11_000,
        bytes_down_received: 12,
        bytes_down_sent: 13,
        captured_bytes: 14,
        truncated: 1,
        uncaptured_datagrams: 2,
      });
    } finally {
      reader.close();
    }
  });

  it("a session that opens, relays and closes within one batch is written by one INSERT, its chunks before or after it, and never updated", async () => {
    const { file, sid, transport } = transportOn();
    // A trigger in the file counts the writer's UPDATEs of session rows.
    const setup = openCapture(file);
    setup.exec(
      "CREATE TABLE session_updates (id INTEGER); CREATE TRIGGER count_session_updates AFTER UPDATE ON sessions BEGIN INSERT INTO session_updates VALUES (NEW.id); END;",
    );
    setup.close();
    transport.sessionOpen(sid, 1, 1000, "127.0.0.1", 40000, "127.0.0.1", 1080);
    transport.sessionRequest(sid, 1000.5, "5", "connect", "ipv4", "127.0.0.1", 7, null);
    transport.sessionReply(sid, 1000.75, 0, null, null, "127.0.0.1", 5555, "127.0.0.1", 7, "127.0.0.1", 7, null, null);
    transport.chunk(sid, 0, 1001, false, Buffer.from("ping"), 4, undefined, 0, null);
    transport.chunk(sid, 1, 1002, true, Buffer.from("pong"), 4, undefined, 0, null);
    transport.sessionProgress(sid, 4, 4, 4, 4, 8, false, 0);
    transport.sessionClose(sid, 1003, "ok", "completed", null, 4, 4, 4, 4, 8, false, 0);
    await transport.close();
    const reader = new CaptureReader(file);
    const check = openCapture(file, { readonly: true });
    try {
      expect(reader.session(sid)).toMatchObject({
        status: "ok",
        close_reason: "completed",
        closed_at: 1003,
        requested_port: 7,
        bytes_down_sent: 4,
        captured_bytes: 8,
      });
      expect([...reader.chunks(sid)].map((c) => c.data.toString())).toEqual(["ping", "pong"]);
      expect(check.prepare("SELECT count(*) AS n FROM session_updates").get()).toEqual({ n: 0 });
    } finally {
      check.close();
      reader.close();
    }
  });

  it("datagrams to and from a new peer each come back whole, each with its own addresses (batches of many shapes)", async () => {
    const { file, sid, transport } = transportOn();
    transport.sessionOpen(sid, 1, 1000, "127.0.0.1", 40000, "127.0.0.1", 1080);
    // Every datagram a new (peer, to) pair, some up and some down, some with a hook's verdict:
    // full batches whose shapes are past the few compared one by one.
    const count = BATCH_ROWS * 16 + 100;
    for (let i = 0; i < count; i++) {
      const host = `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`;
      const down = i % 3 === 0;
      transport.datagram(
        sid,
        i,
        1000 + i,
        down,
        Buffer.from(`d${i}`),
        String(i).length + 1,
        undefined,
        0,
        i % 5 === 0 ? "rewritten" : "relayed",
        "ipv4",
        host,
        53,
        down ? host : "127.0.0.1",
        down ? 53 : 40000,
        down ? "127.0.0.1" : host,
        down ? 40000 : 53,
        null,
        null,
      );
      // Flushes now and then: batches end with the writer's batch too.
      if (i % 1000 === 999) transport.flush();
    }
    await transport.close();
    const reader = new CaptureReader(file);
    try {
      const rows = [...reader.datagrams(sid)];
      expect(rows.length).toBe(count);
      // Ids follow the order of recording: they rise with seq.
      expect(rows.every((row, i) => i === 0 || row.id > rows[i - 1]!.id)).toBe(true);
      rows.forEach((row, i) => {
        const host = `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`;
        const down = i % 3 === 0;
        expect(row).toMatchObject({
          seq: i,
          direction: down ? "down" : "up",
          peer_host: host,
          from_host: down ? host : "127.0.0.1",
          to_host: down ? "127.0.0.1" : host,
          verdict: i % 5 === 0 ? "rewritten" : "relayed",
        });
        expect(row.data.toString()).toBe(`d${i}`);
      });
    } finally {
      reader.close();
    }
  });

  it("a flush whose beforeFlush fills the batch (progress of many sessions) sends it full and goes on in the next one", async () => {
    const sessions = 300;
    // Like the recorder's: the sessions that changed, forgotten once their progress is queued.
    const dirty = new Set<number>();
    const { file, sid, transport } = transportOn({
      beforeFlush: () => {
        for (const s of dirty) transport.sessionProgress(s, s - sid, s - sid + 1, s - sid + 2, s - sid + 3, 0, false, 0);
        dirty.clear();
      },
    });
    for (let i = 0; i < sessions; i++) transport.sessionOpen(sid + i, i + 1, 1000, "127.0.0.1", 40000 + i, "127.0.0.1", 1080);
    // Records up to a few short of a full batch: the progress records overflow it.
    for (let seq = 0; seq < 3700; seq++) transport.chunk(sid, seq, 1000 + seq, false, Buffer.from([seq & 0xff]), 1, undefined, 0, null);
    for (let i = 0; i < sessions; i++) dirty.add(sid + i);
    transport.flush();
    await transport.close();
    const reader = new CaptureReader(file);
    try {
      expect([...reader.chunks(sid)].map((c) => c.seq)).toEqual(Array.from({ length: 3700 }, (_, i) => i));
      for (const i of [0, 150, sessions - 1]) {
        expect(reader.session(sid + i)).toMatchObject({ bytes_up_received: i, bytes_up_sent: i + 1, bytes_down_received: i + 2, bytes_down_sent: i + 3 });
      }
    } finally {
      reader.close();
    }
  });

  it("hasRoom: whether one more record of that many bytes stays within the high-water mark", () => {
    const { sid, transport } = transportOn({ highWaterBytes: 64 * 1024 });
    open(transport, sid);
    expect(transport.hasRoom(32 * 1024)).toBe(true);
    chunk(transport, sid, 0, Buffer.alloc(48 * 1024));
    expect(transport.hasRoom(32 * 1024)).toBe(false);
    expect(transport.hasRoom(1024)).toBe(true);
    return transport.close();
  });

  it("a write error stops it once: `failed` is called once and capturing turns false", async () => {
    const failures: CaptureError[] = [];
    // A file bounded to 40 pages (of 64 KiB): "database or disk is full" within 4 MiB of payload.
    const { sid, transport } = transportOn({ maxPageCount: 40, highWaterBytes: 1024 * 1024, failed: (e) => void failures.push(e) });
    open(transport, sid);
    let waited = 0;
    for (let seq = 0; seq < 64 && failures.length === 0; seq++) {
      chunk(transport, sid, seq, Buffer.alloc(64 * 1024, seq));
      const wait = transport.commitOrWait();
      if (wait === undefined) continue;
      waited++;
      await wait;
    }
    expect(waited).toBeGreaterThan(0);
    for (let i = 0; i < 100 && failures.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(failures).toHaveLength(1);
    expect(failures[0]!.message).toMatch(/disk full/);
    expect(transport.capturing).toBe(false);
    await transport.close();
    expect(failures).toHaveLength(1);
  });
});
