/**
 * The detail window over a real capture: built forward in steps, or from the end backward, it
 * draws exactly what the whole session would (turns, verdicts, sizes), reading bounded pages;
 * a long turn is a few rows however many reads it has; a live session's new rows join.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { DetailWindow, PAGE_ROWS, type StepResult } from "../../src/tui/detail-window.js";
import type { ChunkRow, ShownChunk } from "../../src/tui/types.js";
import { detailLines } from "../../src/tui/views/index.js";
import { session } from "./views/fixtures.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-detail-window-"));
const file = join(root, "w.db");
let reader: CaptureReader;
let all: ChunkRow[];
const ROWS = 1500;

beforeAll(() => {
  const db = openCapture(file);
  db.prepare("INSERT INTO runs (id, started_at, ended_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 1, 'h', '[]', 't')").run();
  const s = db.prepare(
    "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, command, status) VALUES (?, 1, ?, 0, 'a', 1, 'b', 2, 'connect', ?)",
  );
  s.run(1, 1, "ok");
  s.run(2, 2, "ok");
  s.run(3, 3, "open");
  const chunk = db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size, sent, verdict) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
  // Session 1: turns of 1–40 reads, now and then a chunk an addon replaced, dropped or injected.
  let seed = 7;
  const random = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  let direction: "up" | "down" = "up";
  for (let seq = 0; seq < ROWS; ) {
    const reads = 1 + random(40);
    for (let i = 0; i < reads && seq < ROWS; i++, seq++) {
      const data = Buffer.from(`${direction} ${seq} `.repeat(1 + random(5)));
      const verdict = random(30) === 0 ? (["replace", "drop", "inject"] as const)[random(3)]! : null;
      const sent =
        verdict === "replace" ? Buffer.from(`new ${seq}`) : verdict === "drop" ? Buffer.alloc(0) : verdict === "inject" ? Buffer.from(`injected ${seq}`) : null;
      chunk.run(1, seq, seq, direction, verdict === "inject" ? Buffer.alloc(0) : data, verdict === "inject" ? 0 : data.length, sent, verdict);
    }
    direction = direction === "up" ? "down" : "up";
  }
  // Session 2: one turn of 5000 reads of 1 KiB.
  const kib = Buffer.alloc(1024, 0x78);
  for (let seq = 0; seq < 5000; seq++) chunk.run(2, seq, seq, "down", kib, 1024, null, null);
  db.close();
  reader = new CaptureReader(file);
  all = [...reader.chunks(1)];
});
afterAll(() => {
  reader.close();
  rmSync(root, { recursive: true, force: true });
});

const text = (chunks: readonly ShownChunk[]) =>
  detailLines({ session: session({ command: "connect" }), events: [], chunks, datagrams: [], tab: "stream", mode: "auto", width: 100 }).map((l) => l.text);
const rowsOf = (w: DetailWindow) => w.rows() as ShownChunk[];

describe("DetailWindow (turns)", () => {
  it("built forward in steps draws what the whole session draws", () => {
    const w = new DetailWindow(reader, 1, "turns");
    let steps = 0;
    while (w.later) {
      w.forward(true);
      steps++;
    }
    expect(steps).toBeGreaterThanOrEqual(Math.ceil(ROWS / PAGE_ROWS));
    expect(w.earlier).toBe(false);
    expect(text(rowsOf(w))).toEqual(text(all));
  });

  it("built from the end backward draws the same, each backward step adding whole turns at the front", () => {
    const w = new DetailWindow(reader, 1, "turns");
    w.resetEnd();
    let fronts = 0;
    while (w.earlier || w.busy) {
      const result: StepResult = w.backward();
      if (result.front !== undefined) fronts++;
    }
    expect(fronts).toBeGreaterThan(10);
    expect(text(rowsOf(w))).toEqual(text(all));
  });

  it("holds a turn of 5000 reads as its first 16 KiB and one summary row, with the right totals", () => {
    const w = new DetailWindow(reader, 2, "turns");
    while (w.later) w.forward(true);
    expect(w.items).toHaveLength(1);
    const rows = rowsOf(w);
    expect(rows.length).toBeLessThanOrEqual(17);
    expect(rows.at(-1)).toMatchObject({ reads: 5000 - 16, dataBytes: (5000 - 16) * 1024, lastSeq: 4999 });
    expect(text(rows)[0]).toMatch(/#0–4999 \(5120000 bytes in 5000 reads\)$/);
    expect(text(rows).at(-1)).toContain(`… ${5120000 - 16 * 1024} more bytes`);
  });

  it("trims the front and back, and a live session's new rows join its open last turn", () => {
    const w = new DetailWindow(reader, 1, "turns");
    w.forward(true);
    const count = w.items.length;
    const front = w.trimFront(3);
    expect(front.front).toMatchObject({ added: false, earlierBefore: false });
    expect(w.items).toHaveLength(count - 3);
    expect(w.earlier).toBe(true);
    w.trimBack(2);
    expect(w.later).toBe(true);
    // Back to the start: what was dropped is read again.
    w.resetStart();
    while (w.later) w.forward(true);
    expect(text(rowsOf(w))).toEqual(text(all));

    const live = new DetailWindow(reader, 3, "turns");
    live.forward(true);
    expect(live.items).toHaveLength(0);
    expect(live.later).toBe(false);
    const db = openCapture(file);
    const add = db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size) VALUES (3, ?, ?, ?, ?, ?)");
    add.run(0, 0, "up", Buffer.from("GET /"), 5);
    live.forward(true);
    add.run(1, 1, "up", Buffer.from(" HTTP/1.1"), 9);
    add.run(2, 2, "down", Buffer.from("200"), 3);
    live.forward(true);
    db.close();
    expect(text(rowsOf(live))).toEqual([
      expect.stringMatching(/#0–1 \(14 bytes in 2 reads\)$/),
      "   GET / HTTP/1.1",
      expect.stringMatching(/#2 \(3 bytes\)$/),
      "   200",
    ]);
  });
});
