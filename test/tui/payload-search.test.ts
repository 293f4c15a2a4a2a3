/**
 * PayloadSearch, the live TUI's bounded evaluation of `~` filters, against the SQL path
 * (CaptureReader.sessions with the filter, which is what `socksmith sessions --filter` runs):
 * searched to the end in tiny steps, it lists exactly the sessions SQL selects, on a generated
 * capture and as the capture grows; and no step reads more than its budget.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseFilter } from "../../src/filter/index.js";
import { openCapture } from "../../src/store/database.js";
import { CaptureReader } from "../../src/store/reader.js";
import { PayloadSearch, hasPayloadTerm } from "../../src/tui/payload-search.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-payload-search-"));
const file = join(root, "mixed.db");
const T = Date.UTC(2026, 0, 1);
const NOW = T + 1_000_000;
const WORDS = ["needle", "NEEDLE", "hay", "GET / HTTP/1.1", "\x00\xff", "", "a needle and hay", "ne", "edle"];
const FILTERS = [
  '~"needle"',
  '~i"needle"',
  '!~"needle"',
  'host:alpha* ~"hay"',
  '~"needle" | ~"GET"',
  '!(~"needle" ~"hay")',
  'status:open ~"hay"',
  'bytes>500 | ~"\\x00"',
  '~"^$"',
  'cmd:udp !~"hay"',
  'dur>100s ~"needle"',
];

/** A small deterministic generator (mulberry32). */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let writer: Database.Database;
let reader: CaptureReader;
let nextId = 1;
const next = random(11);
const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
const seqs = new Map<number, number>();

function addSession(open: boolean): number {
  const id = nextId++;
  const udp = next() < 0.25;
  writer
    .prepare(
      `INSERT INTO sessions (id, run_id, engine_id, opened_at, closed_at, client_host, client_port, local_host, local_port, version, command,
         requested_host, requested_port, status, bytes_up_received, bytes_down_received)
       VALUES (?, 1, ?, ?, ?, '127.0.0.1', 40000, '127.0.0.1', 1080, '5', ?, ?, 80, ?, ?, ?)`,
    )
    .run(
      id,
      id,
      T + id * 1000,
      open ? null : T + id * 1000 + Math.floor(next() * 300_000),
      udp ? "udp" : "connect",
      pick(["alpha.example", "beta.example"]),
      open ? "open" : pick(["ok", "failed"]),
      Math.floor(next() * 1000),
      0,
    );
  const rows = Math.floor(next() * 6);
  for (let i = 0; i < rows; i++) addPayload(id, udp);
  return id;
}

function addPayload(id: number, udp = false, text?: string): void {
  const seq = seqs.get(id) ?? 0;
  seqs.set(id, seq + 1);
  const data = Buffer.from(text ?? pick(WORDS), "latin1");
  const sent = next() < 0.2 ? Buffer.from(pick(WORDS), "latin1") : null;
  if (udp) {
    writer
      .prepare(
        `INSERT INTO datagrams (session_id, seq, at, direction, from_host, from_port, data, size, sent, verdict)
         VALUES (?, ?, ?, 'up', '127.0.0.1', 1, ?, ?, ?, 'relayed')`,
      )
      .run(id, seq, T, data, data.length, sent);
  } else {
    const insert = writer.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size, sent) VALUES (?, ?, ?, 'up', ?, ?, ?)");
    insert.run(id, seq, T, data, data.length, sent);
  }
}

beforeAll(() => {
  writer = openCapture(file);
  writer.prepare("INSERT INTO runs (id, started_at, pid, hostname, listen, socksmith_version) VALUES (1, 0, 1, 'h', '[]', 't')").run();
  for (let i = 0; i < 120; i++) addSession(next() < 0.2);
  reader = new CaptureReader(file);
});
afterAll(() => {
  reader.close();
  writer.close();
  rmSync(root, { recursive: true, force: true });
});

const sqlIds = (text: string) => reader.sessions({ filter: text, order: "oldest", limit: 1_000_000, now: NOW }).map((r) => r.id);
const searchIds = (search: PayloadSearch) => search.sessions({ order: "oldest", limit: 1_000_000 }).map((r) => r.id);

/** Steps until every session counted has been searched; the number of steps taken. */
function finish(search: PayloadSearch): number {
  for (let steps = 1; steps <= 10_000; steps++) {
    search.step(NOW);
    if (search.done()) return steps;
  }
  throw new Error(`the search never finished: ${JSON.stringify(search.progress())}`);
}

describe("PayloadSearch", () => {
  it("tells payload filters from others", () => {
    expect(hasPayloadTerm(parseFilter('host:x !(port:80 | ~"a")'))).toBe(true);
    expect(hasPayloadTerm(parseFilter("host:x !(port:80 | bytes>1)"))).toBe(false);
    expect(hasPayloadTerm(undefined)).toBe(false);
  });

  it("searched in tiny steps, lists exactly what SQL selects, for every filter, in both orders and by range", () => {
    for (const text of FILTERS) {
      const search = new PayloadSearch(reader, parseFilter(text), { stepBytes: 24, stepRows: 4 });
      const steps = finish(search);
      const expected = sqlIds(text);
      expect(searchIds(search), text).toEqual(expected);
      expect(search.count(), text).toBe(expected.length);
      expect(search.progress(), text).toEqual({ searched: 120, total: 120 });
      // Bounded steps: it took many.
      expect(steps, text).toBeGreaterThan(10);
      const newest = search.sessions({ limit: 3 }).map((r) => r.id);
      expect(newest, text).toEqual(expected.slice(-3).reverse());
      const middle = expected[Math.floor(expected.length / 2)] ?? 60;
      expect(
        search.sessions({ before: middle, limit: 2 }).map((r) => r.id),
        text,
      ).toEqual(
        expected
          .filter((id) => id < middle)
          .slice(-2)
          .reverse(),
      );
      expect(
        search.sessions({ after: middle, order: "oldest", limit: 2 }).map((r) => r.id),
        text,
      ).toEqual(expected.filter((id) => id > middle).slice(0, 2));
      expect(search.count({ after: middle }), text).toBe(expected.filter((id) => id > middle).length);
    }
  });

  it("follows a growing capture: new sessions, new payload in open sessions, sessions that close", () => {
    const searches = FILTERS.map((text) => ({ text, search: new PayloadSearch(reader, parseFilter(text), { stepBytes: 40, stepRows: 6 }) }));
    for (const { search } of searches) finish(search);
    const open = writer.prepare("SELECT id FROM sessions WHERE status = 'open' AND command = 'connect' ORDER BY id").all() as { id: number }[];
    expect(open.length).toBeGreaterThan(3);
    addPayload(open[0]!.id, false, "late needle");
    addPayload(open[1]!.id, false, "late hay");
    writer.prepare("UPDATE sessions SET status = 'ok', closed_at = ? WHERE id = ?").run(T + 500_000, open[2]!.id);
    addPayload(open[3]!.id, false, "needle before closing");
    writer.prepare("UPDATE sessions SET status = 'failed', closed_at = ? WHERE id = ?").run(T + 600_000, open[3]!.id);
    for (let i = 0; i < 10; i++) addSession(i % 3 === 0);
    for (const { text, search } of searches) {
      finish(search);
      // Open sessions are re-read as the search comes round to them: a few more steps catch up on all.
      for (let i = 0; i < 40; i++) search.step(NOW);
      expect(searchIds(search), text).toEqual(sqlIds(text));
      expect(search.progress().total, text).toBe(130);
    }
  });

  it("reads at most its budget of payload and rows per step (one row over only when it is the step's first)", () => {
    const step = { bytes: 0, rows: 0, maxBytes: 0, maxRows: 0, biggest: 0 };
    const size = (b: Buffer | null) => b?.length ?? 0;
    const counting = new Proxy(reader, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver) as unknown;
        if (typeof value !== "function") return value;
        return (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (result instanceof Map) {
            for (const p of result.values() as IterableIterator<{ data: Buffer; sent: Buffer | null }>) {
              step.bytes += size(p.data) + size(p.sent);
              step.biggest = Math.max(step.biggest, size(p.data) + size(p.sent));
            }
          } else if (Array.isArray(result)) step.rows += result.length;
          else if (result !== undefined && key === "session") step.rows += 1;
          return result;
        };
      },
    });
    const search = new PayloadSearch(counting, parseFilter('~"never matches"'), { stepBytes: 50, stepRows: 7 });
    for (let i = 0; i < 100_000 && (i === 0 || !search.done()); i++) {
      step.bytes = 0;
      step.rows = 0;
      search.step(NOW);
      step.maxBytes = Math.max(step.maxBytes, step.bytes);
      step.maxRows = Math.max(step.maxRows, step.rows);
    }
    expect(search.done()).toBe(true);
    expect(step.maxBytes).toBeLessThanOrEqual(50 + step.biggest);
    expect(step.maxRows).toBeLessThanOrEqual(7);
  });
});
