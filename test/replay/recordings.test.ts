/** Choosing between recordings of one destination (server replay), and serving big ones in bounded memory. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { PAGE_BYTES, Recordings, likeness, mostAlike } from "../../src/replay/recordings.js";
import { ServerReplay } from "../../src/replay/server-replay.js";
import { beginRun, openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { CaptureWriter } from "../../src/store/writer.js";
import { allowAllHooks, type Direction, type SessionHandle } from "../../src/engine/index.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-recordings-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const b = (text: string) => Buffer.from(text, "latin1");

describe("mostAlike", () => {
  it("prefers the same bytes, then the most bytes equal at the same offsets, then the oldest", () => {
    const recorded = ["GET /alpha HTTP/1.1\r\n", "GET /beta HTTP/1.1\r\n", "GET /beta HTTP/1.1\r\n"].map(b);
    expect(mostAlike(recorded, b("GET /beta HTTP/1.1\r\n"), (x) => x)).toBe(recorded[1]);
    // A DNS-like query whose first two bytes (the ID) changed still finds its question.
    const queries = [b("\x12\x34example.org"), b("\x12\x34example.com")];
    expect(mostAlike(queries, b("\x99\x99example.com"), (x) => x)).toBe(queries[1]);
    expect(mostAlike([], b("x"), (x: Buffer) => x)).toBeUndefined();
    expect(mostAlike([b("aaaa"), b("bbbb")], b("cccc"), (x) => x)).toEqual(b("aaaa"));
  });

  it("likeness is symmetric, and greatest for the bytes themselves", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.uint8Array({ maxLength: 64 }), (x, y) => {
        expect(likeness(x, y)).toBe(likeness(y, x));
        expect(likeness(x, x)).toBeGreaterThanOrEqual(likeness(x, y));
      }),
    );
  });
});

const MiB = 1024 * 1024;

/** A capture file with one CONNECT to big.test:80 whose chunks are `turns` (a string = that many bytes of it repeated). */
function recording(turns: Array<["up" | "down", Buffer]>): string {
  const file = join(root, `r${Math.random().toString(36).slice(2)}.db`);
  const db = openCapture(file);
  const { runId } = beginRun(db, file, { listen: [], version: "test", now: 1 });
  db.prepare(
    `INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, version, command, requested_type, requested_host, requested_port, reply, status)
     VALUES (1, ?, 1, 1, '127.0.0.1', 5000, '127.0.0.1', 1080, '5', 'connect', 'domain', 'big.test', 80, 0, 'ok')`,
  ).run(runId);
  db.close();
  // Through the capture writer, as a live capture stores them: parts over 4 KiB in the payload file.
  const writer = new CaptureWriter(file, runId);
  let seq = 0;
  for (const [direction, bytes] of turns) {
    // Recorded the way reads come: up to 1 MiB per chunk.
    for (let o = 0; o < bytes.length; o += MiB) {
      const part = bytes.subarray(o, o + MiB);
      const arena = new Uint8Array(part).buffer;
      const data = { offset: 0, length: part.length };
      writer.write({
        seq: seq + 1,
        bytes: part.length,
        arena,
        ops: [{ op: "chunk", sid: 1, seq, at: seq, direction, data, size: part.length, sent: null, verdict: null }],
      });
      seq++;
    }
  }
  writer.stop(2);
  return file;
}

/** A session handle that records what is injected and paces like a client that reads only when told. */
function pacedHandle() {
  const injected: Buffer[] = [];
  let release: (() => void) | undefined;
  let closed = false;
  const handle: SessionHandle = {
    id: 1,
    inject: (_d: Direction, data: Uint8Array) => void injected.push(Buffer.from(data)),
    injectDatagram: () => {},
    close: () => void (closed = true),
    // The client's socket is full after every injected chunk until the test lets it drain.
    writable: () => new Promise<void>((resolve) => (release = resolve)),
  };
  const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
  return {
    handle,
    injected,
    bytes: () => injected.reduce((n, b) => n + b.length, 0),
    closed: () => closed,
    async drain() {
      const r = release;
      release = undefined;
      r?.();
      await tick();
      await tick();
    },
    tick,
  };
}

const request = {
  id: 1,
  version: 5 as const,
  command: "connect" as const,
  destination: { type: "domain" as const, host: "big.test", port: 80 },
  client: { host: "127.0.0.1", port: 5000 },
};
const reply = { id: 1, version: 5 as const, command: "connect" as const, stage: "final" as const, rep: 0, bound: { host: "0.0.0.0", port: 0 } };

describe("server replay of a big recording", () => {
  it("reads it in pages and writes it a chunk at a time, waiting for the client's drain: 64 MiB held as one chunk, byte-exact", async () => {
    const answer = Buffer.alloc(64 * MiB);
    for (let i = 0; i < answer.length; i += 4096) answer.writeUInt32LE(i, i);
    const reader = new CaptureReader(
      recording([
        ["up", Buffer.from("GET /big")],
        ["down", answer],
      ]),
    );
    const recordings = new Recordings(reader);
    const replay = new ServerReplay(recordings, allowAllHooks, { miss: "deny", reuse: false });
    const client = pacedHandle();
    try {
      expect(replay.request(request, client.handle)).toEqual({ serve: true });
      replay.reply(reply, client.handle);
      replay.data({ id: 1, direction: "up", seq: 0, data: Buffer.from("GET /big") }, client.handle);
      await client.tick();
      await client.tick();
      // Before: the whole recording was read and all 64 MiB injected at once.
      expect(client.bytes()).toBe(MiB);
      expect(recordings.paging.maxPageBytes).toBeLessThanOrEqual(PAGE_BYTES);
      let held = 0;
      while (!client.closed()) {
        const before = client.bytes();
        await client.drain();
        held = Math.max(held, client.bytes() - before);
        if (client.bytes() === before && !client.closed()) throw new Error(`stalled at ${before} bytes`);
      }
      expect(held).toBeLessThanOrEqual(MiB);
      expect(Buffer.concat(client.injected).equals(answer)).toBe(true);
      expect(recordings.paging.pages).toBeGreaterThanOrEqual(64);
      expect(recordings.paging.maxPageBytes).toBeLessThanOrEqual(PAGE_BYTES);
    } finally {
      recordings.close();
      reader.close();
    }
  });

  it("client bytes that arrive while an answer is still going out count toward the next turn", async () => {
    const first = Buffer.alloc(3 * MiB, 0x61);
    const reader = new CaptureReader(
      recording([
        ["up", Buffer.from("A")],
        ["down", first],
        ["up", Buffer.from("BB")],
        ["down", Buffer.from("second answer")],
      ]),
    );
    const recordings = new Recordings(reader);
    const replay = new ServerReplay(recordings, allowAllHooks, { miss: "deny", reuse: false, quietMs: 60_000 });
    const client = pacedHandle();
    try {
      replay.request(request, client.handle);
      replay.reply(reply, client.handle);
      replay.data({ id: 1, direction: "up", seq: 0, data: Buffer.from("A") }, client.handle);
      await client.tick();
      // The next request comes while the 3 MiB are still paced out.
      replay.data({ id: 1, direction: "up", seq: 1, data: Buffer.from("BB") }, client.handle);
      for (let i = 0; i < 10 && !client.closed(); i++) await client.drain();
      expect(client.closed()).toBe(true);
      expect(Buffer.concat(client.injected).equals(Buffer.concat([first, Buffer.from("second answer")]))).toBe(true);
    } finally {
      recordings.close();
      reader.close();
    }
  });
});
