/**
 * The list's window over a real capture file of 100,000 sessions: rows around the selection,
 * edges, steps, hidden rows and filters, each answered by a few indexed queries.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { parseFilter } from "../../src/filter/index.js";
import { edge, stepFrom, windowAround } from "../../src/tui/session-window.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-window-"));
const file = join(root, "many.db");
const N = 100_000;
let reader: CaptureReader;

beforeAll(() => {
  const db = openCapture(file);
  db.prepare("INSERT INTO runs (id, started_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 'h', '[]', 't')").run();
  const insert = db.prepare(
    "INSERT INTO sessions (id, run_id, engine_id, opened_at, closed_at, client_host, client_port, local_host, local_port, requested_host, requested_port, status) VALUES (?, 1, ?, ?, ?, '127.0.0.1', 40000, '127.0.0.1', 1080, ?, ?, 'ok')",
  );
  db.transaction(() => {
    for (let id = 1; id <= N; id++) insert.run(id, id, id, id + 5, id % 10 === 0 ? "ten.example" : "other.example", 80);
  })();
  db.prepare("UPDATE runs SET ended_at = 1").run();
  db.close();
  reader = new CaptureReader(file);
});
afterAll(() => {
  reader.close();
  rmSync(root, { recursive: true, force: true });
});

const none = new Set<number>();
const ids = (rows: { id: number }[]) => rows.map((r) => r.id);

describe("windowAround", () => {
  it("with no selection shows the newest sessions, the newest selected at the bottom", () => {
    const w = windowAround(reader, { selectedId: undefined, position: 99, height: 5, hidden: none, now: 0 });
    expect(ids(w.rows)).toEqual([N - 4, N - 3, N - 2, N - 1, N]);
    expect(w).toMatchObject({ selectedId: N, position: 4 });
  });

  it("keeps the selection at its screen position, and fills from the other side at the edges", () => {
    expect(ids(windowAround(reader, { selectedId: 500, position: 2, height: 5, hidden: none, now: 0 }).rows)).toEqual([498, 499, 500, 501, 502]);
    const start = windowAround(reader, { selectedId: 2, position: 3, height: 5, hidden: none, now: 0 });
    expect(ids(start.rows)).toEqual([1, 2, 3, 4, 5]);
    expect(start.position).toBe(1);
    const end = windowAround(reader, { selectedId: N - 1, position: 0, height: 5, hidden: none, now: 0 });
    expect(ids(end.rows)).toEqual([N - 4, N - 3, N - 2, N - 1, N]);
    expect(end.position).toBe(3);
  });

  it("skips hidden sessions and moves a hidden selection to its older neighbour", () => {
    const hidden = new Set([500, 501]);
    const w = windowAround(reader, { selectedId: 501, position: 1, height: 4, hidden, now: 0 });
    expect(w.selectedId).toBe(499);
    expect(ids(w.rows)).not.toContain(500);
    expect(stepFrom(reader, undefined, hidden, 499, 1, 0)).toBe(502);
  });

  it("pages through a filter with indexed range queries only", () => {
    const filter = parseFilter("host:ten.*");
    const w = windowAround(reader, { filter, selectedId: undefined, position: 9, height: 3, hidden: none, now: 0 });
    expect(ids(w.rows)).toEqual([N - 20, N - 10, N]);
    expect(stepFrom(reader, filter, none, N, -2, 0)).toBe(N - 20);
    expect(edge(reader, filter, none, "first", 0)).toBe(10);
    expect(edge(reader, undefined, none, "last", 0)).toBe(N);
    // Stepping past the end stops at the last session.
    expect(stepFrom(reader, undefined, none, N - 1, 5, 0)).toBe(N);
  });
});
