/**
 * The live TUI shares the relay's thread (better-sqlite3 is synchronous): opening, scrolling and
 * exporting a 64 MiB session must neither block the event loop nor read the session whole.
 * The reader is wrapped to count what every call returns (rows and payload bytes, iterators as
 * they are consumed); blocks of the event loop are measured with a timer gap detector.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, openSync, readSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { render } from "ink-testing-library";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { App } from "../../src/tui/app.js";
import { plain } from "./views/fixtures.js";
import { blockMeter } from "../support/block-meter.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-big-"));
const file = join(root, "big.db");
const CHUNK = 16 * 1024;
const TURNS = 8;
/** 8 turns of 8 MiB down, each after a small request: 64 MiB in 4096 chunks. */
const CHUNKS_PER_TURN = 512;
const TOTAL = TURNS * CHUNKS_PER_TURN * CHUNK;
/** Generous: the old code blocked for seconds here. */
const MAX_BLOCK_MS = 250;

/** Counts what the reader hands out: per call (an iterator counts as one call, as consumed) and in all. */
interface Reads {
  calls: number;
  bytes: number;
  rows: number;
  maxCallBytes: number;
}

function counted(reader: CaptureReader, reads: Reads): CaptureReader {
  const size = (value: unknown, seen: { bytes: number; rows: number }): void => {
    if (Buffer.isBuffer(value)) seen.bytes += value.length;
    else if (typeof value === "string") seen.bytes += value.length;
    else if (Array.isArray(value)) for (const v of value) size(v, seen);
    else if (value instanceof Map) for (const v of value.values()) size(v, seen);
    else if (value !== null && typeof value === "object") {
      seen.rows++;
      for (const v of Object.values(value)) if (Buffer.isBuffer(v) || typeof v === "string") size(v, seen);
    }
  };
  const account = (seen: { bytes: number; rows: number }) => {
    reads.calls++;
    reads.bytes += seen.bytes;
    reads.rows += seen.rows;
    reads.maxCallBytes = Math.max(reads.maxCallBytes, seen.bytes);
  };
  return new Proxy(reader, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver) as unknown;
      if (typeof value !== "function" || key === "close") return value;
      return (...args: unknown[]) => {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (result !== null && typeof result === "object" && Symbol.iterator in result && !Array.isArray(result) && !(result instanceof Map)) {
          // An iterator: count what is taken from it as one call.
          const seen = { bytes: 0, rows: 0 };
          const iterator = result as IterableIterator<unknown>;
          let done = false;
          const wrapped: IterableIterator<unknown> = {
            next() {
              const step = iterator.next();
              if (!step.done) size(step.value, seen);
              else if (!done) {
                done = true;
                account(seen);
              }
              return step;
            },
            [Symbol.iterator]() {
              return wrapped;
            },
          };
          return wrapped;
        }
        const seen = { bytes: 0, rows: 0 };
        size(result, seen);
        account(seen);
        return result;
      };
    },
  });
}

beforeAll(() => {
  const db = openCapture(file);
  db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 1, 'h', '[]', 't')").run();
  const t = Date.UTC(2026, 0, 1);
  db.prepare(
    `INSERT INTO sessions (id, run_id, engine_id, opened_at, closed_at, client_host, client_port, local_host, local_port, version, command,
       requested_type, requested_host, requested_port, target_host, target_port, reply, status, close_reason, bytes_up_received, bytes_down_received, captured_bytes)
     VALUES (1, 1, 1, ?, ?, '127.0.0.1', 40000, '127.0.0.1', 1080, '5', 'connect', 'domain', 'big.example', 80, 'big.example', 80, 0, 'ok', 'completed', ?, ?, ?)`,
  ).run(t, t + 60_000, TURNS * 30, TOTAL, TOTAL + TURNS * 30);
  // Session 2: small, opened first so that what the first drawing of a detail view costs (code
  // loaded and compiled once) is not counted against the big one.
  db.prepare(
    `INSERT INTO sessions (id, run_id, engine_id, opened_at, closed_at, client_host, client_port, local_host, local_port, version, command,
       requested_type, requested_host, requested_port, target_host, target_port, reply, status, close_reason, bytes_up_received, bytes_down_received)
     VALUES (2, 1, 2, ?, ?, '127.0.0.1', 40001, '127.0.0.1', 1080, '5', 'connect', 'domain', 'small.example', 80, 'small.example', 80, 0, 'ok', 'completed', 5, 5000)`,
  ).run(t + 70_000, t + 70_010);
  db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size) VALUES (2, 0, ?, 'up', ?, 5)").run(t + 70_001, Buffer.from("hello"));
  db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size) VALUES (2, 1, ?, 'down', ?, 5000)").run(t + 70_002, Buffer.alloc(5000, 0x7a));
  const chunk = db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size) VALUES (1, ?, ?, ?, ?, ?)");
  db.transaction(() => {
    let seq = 0;
    for (let turn = 0; turn < TURNS; turn++) {
      const request = Buffer.from(`GET /part-${turn} HTTP/1.1\r\n\r\n`);
      chunk.run(seq, t + seq, "up", request, request.length);
      seq++;
      const body = Buffer.alloc(CHUNK, 0x61 + turn);
      for (let i = 0; i < CHUNKS_PER_TURN; i++) {
        chunk.run(seq, t + seq, "down", body, CHUNK);
        seq++;
      }
    }
  })();
  db.close();
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const frameOf = (ui: { lastFrame(): string | undefined }) => plain(ui.lastFrame());
/** Waits for the frame to say something; then a moment, so the input handler of the new state is in place. */
const until = async (check: () => void, timeout = 20_000) => {
  await vi.waitFor(check, { timeout, interval: 25 });
  await new Promise((r) => setTimeout(r, 40));
};

describe("the TUI over a 64 MiB session", () => {
  it("opens, scrolls to the end and back, and exports it without blocking the event loop or reading it whole", { timeout: 120_000 }, async () => {
    const reads: Reads = { calls: 0, bytes: 0, rows: 0, maxCallBytes: 0 };
    const reader = new CaptureReader(file);
    const source = counted(reader, reads);
    const meter = blockMeter();
    // The longest block of each phase (opening, paging, G, g, export).
    const blocked: Record<string, number> = {};
    let idleBytes = 0;
    const phase = (name: string) => {
      blocked[name] = meter.take();
    };
    const ui = render(<App source={source} follow pollMs={20} exportDir={root} />);
    try {
      await until(() => expect(frameOf(ui)).toContain("big.example"));
      ui.stdin.write("\r");
      await until(() => expect(frameOf(ui)).toContain("zzzzzzzz"));
      ui.stdin.write("q");
      await until(() => expect(frameOf(ui)).toMatch(/^ +ID +TIME/m));
      ui.stdin.write("k");
      await until(() => expect(frameOf(ui)).toMatch(/^> +1 /m));
      // Not counted: the first detail view drawn compiles and loads code once, whatever the session.
      meter.take();
      ui.stdin.write("\r");
      await until(() => expect(frameOf(ui)).toContain("GET /part-0 HTTP/1.1"));
      await until(() => expect(frameOf(ui)).toMatch(/#1–512 \(8388608 bytes in 512 reads\)/));
      phase("open");
      // Let it poll for a while (every 20 ms) with the session open: a poll reads next to nothing.
      const before = reads.bytes;
      await new Promise((r) => setTimeout(r, 500));
      idleBytes = reads.bytes - before;
      phase("polls");
      for (let i = 0; i < 5; i++) {
        ui.stdin.write(" ");
        await new Promise((r) => setTimeout(r, 30));
      }
      phase("page down");
      ui.stdin.write("G");
      // The last page: the end of the last turn's shown bytes (turn 7 is all "h") and what is not shown.
      await until(() => expect(frameOf(ui)).toMatch(/hhhhhhhh\n {3}… \d+ more bytes/));
      phase("G");
      ui.stdin.write("g");
      await until(() => expect(frameOf(ui)).toContain("GET /part-0 HTTP/1.1"));
      ui.stdin.write("q");
      await until(() => expect(frameOf(ui)).not.toContain("GET /part-0"));
      phase("g");
      ui.stdin.write("e");
      await until(() => expect(frameOf(ui)).toContain("exported session 1"), 60_000);
      phase("export");
    } finally {
      meter.stop();
      ui.unmount();
      reader.close();
    }
    expect(Math.max(...Object.values(blocked)), `the longest blocks of the event loop, by phase (ms): ${JSON.stringify(blocked)}`).toBeLessThan(MAX_BLOCK_MS);
    // Polls of an open view read next to nothing; no call hands out more than a step's budget; and
    // in all, the export's one pass over the session (64 MiB) and a few MiB for the views.
    expect(idleBytes).toBeLessThan(64 * 1024);
    expect(reads.maxCallBytes).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(reads.bytes).toBeLessThan(TOTAL + 8 * 1024 * 1024);

    // The export is the whole session, as JSON.stringify would write it.
    const exported = join(root, "socksmith-1.json");
    expect(statSync(exported).size).toBeGreaterThan((TOTAL * 4) / 3);
    const fd = openSync(exported, "r");
    const head = Buffer.alloc(64);
    readSync(fd, head, 0, 64, 0);
    const tail = Buffer.alloc(64);
    readSync(fd, tail, 0, 64, statSync(exported).size - 64);
    closeSync(fd);
    expect(head.toString()).toMatch(/^\{\n {2}"id": 1,\n {2}"run": 1,/);
    expect(tail.toString()).toMatch(/"datagrams": \[\]\n\}\n$/);
    const doc = JSON.parse(readFileSync(exported, "utf8")) as { chunks: { seq: number; data: string }[] };
    expect(doc.chunks).toHaveLength(TURNS * (CHUNKS_PER_TURN + 1));
    expect(doc.chunks.map((c) => c.seq)).toEqual([...doc.chunks.keys()]);
    expect(Buffer.from(doc.chunks[4096]!.data, "base64")).toEqual(Buffer.alloc(CHUNK, 0x61 + 7));
  });
});
