/**
 * The transport to the writer thread on its own (no engine, no recorder): operations and payload
 * in, a capture file out, and the budget that makes a TCP caller wait.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CaptureTransport, type TransportOptions } from "../../src/store/capture-transport.js";
import { beginRun, openCapture, type CaptureError } from "../../src/store/database.js";
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
