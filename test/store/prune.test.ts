/**
 * Pruning a capture (store/prune.ts): the sessions that match go with all their rows, the rest
 * read back byte for byte from a compacted payload file, the files shrink, a live writer is
 * refused, and a swap a crash interrupted is finished by readers and writers alike.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { parseFilter } from "../../src/filter/index.js";
import type { Operation } from "../../src/store/batch.js";
import { beginRun, openCapture } from "../../src/store/database.js";
import { payloadFileOf } from "../../src/store/payload-file.js";
import { pruneCapture } from "../../src/store/prune.js";
import { CaptureReader } from "../../src/store/reader.js";
import { CaptureWriter } from "../../src/store/writer.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-prune-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

function pattern(length: number, salt: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (i * 13 + salt * 71 + (i >> 9)) & 0xff;
  return out;
}

/** Sessions 1..n (host sN.test, opened at N × 1000), each with a large down chunk and a small up one; session 2 replays session 1. */
function capture(n: number): { file: string; bodies: Map<number, Buffer> } {
  const file = join(root, `c${++counter}.db`);
  const db = openCapture(file);
  const { runId } = beginRun(db, file, { listen: [], version: "test", now: 1 });
  db.close();
  const writer = new CaptureWriter(file, runId);
  const bodies = new Map<number, Buffer>();
  let seq = 0;
  for (let sid = 1; sid <= n; sid++) {
    const body = pattern(20_000 + sid * 1000, sid);
    bodies.set(sid, body);
    const arena = Buffer.concat([Buffer.from(`GET /${sid}`), body]);
    const up = { offset: 0, length: arena.length - body.length };
    const down = { offset: up.length, length: body.length };
    const ops: Operation[] = [
      { op: "open", sid, engineId: sid, at: sid * 1000, clientHost: "127.0.0.1", clientPort: 40000 + sid, localHost: "127.0.0.1", localPort: 1080 },
      { op: "request", sid, at: sid * 1000, version: "5", command: "connect", type: "domain", host: `s${sid}.test`, port: 80, user: null },
      { op: "chunk", sid, seq: 0, at: sid * 1000 + 1, direction: "up", data: up, size: up.length, sent: null, verdict: null },
      { op: "chunk", sid, seq: 1, at: sid * 1000 + 2, direction: "down", data: down, size: down.length, sent: null, verdict: null },
      { op: "event", sid, at: sid * 1000 + 3, kind: "addon-log", addon: "a", hook: "onData", location: null, code: null, message: `log ${sid}` },
    ];
    if (sid === 2) ops.push({ op: "links", sid, replayOf: 1, servedFrom: null });
    writer.write({ seq: ++seq, ops, bytes: arena.length, arena: arena.buffer.slice(arena.byteOffset, arena.byteOffset + arena.length) as ArrayBuffer });
  }
  writer.stop(99_000);
  return { file, bodies };
}

function readBack(file: string): Map<number, Buffer> {
  const reader = new CaptureReader(file);
  try {
    const out = new Map<number, Buffer>();
    for (const s of reader.sessions({ limit: 1000 })) {
      out.set(s.id, Buffer.concat([...reader.chunks(s.id)].filter((c) => c.direction === "down").map((c) => c.data)));
    }
    return out;
  } finally {
    reader.close();
  }
}

describe("pruneCapture", () => {
  it("deletes the matching sessions with their rows, keeps the others byte for byte, and shrinks the payload file to what is kept", () => {
    const { file, bodies } = capture(6);
    const before = statSync(payloadFileOf(file)).size;
    const result = pruneCapture(file, { filter: parseFilter("host:s1.test|s3.test|s5.test") });
    expect(result.sessions).toBe(3);
    expect(result.bytesAfter).toBeLessThan(result.bytesBefore);
    const kept = [2, 4, 6].map((sid) => bodies.get(sid)!.length).reduce((a, b) => a + b, 0);
    expect(statSync(payloadFileOf(file)).size).toBe(kept);
    expect(statSync(payloadFileOf(file)).size).toBeLessThan(before);
    expect(statSync(payloadFileOf(file)).mode & 0o777).toBe(0o600);
    const back = readBack(file);
    expect([...back.keys()].sort()).toEqual([2, 4, 6]);
    for (const [sid, body] of back) expect(body.equals(bodies.get(sid)!)).toBe(true);
    const db = new Database(file, { readonly: true });
    try {
      for (const table of ["chunks", "events"]) {
        expect(db.prepare(`SELECT DISTINCT session_id AS s FROM ${table} ORDER BY s`).all()).toEqual([{ s: 2 }, { s: 4 }, { s: 6 }]);
      }
      // Session 2 replayed session 1, which is gone: the link is cleared, not left dangling.
      expect(db.prepare("SELECT replay_of FROM sessions WHERE id = 2").get()).toEqual({ replay_of: null });
      expect(db.prepare("SELECT name FROM payload_file").get()).toEqual({ name: null });
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    } finally {
      db.close();
    }
    expect(existsSync(`${payloadFileOf(file)}.compacting`)).toBe(false);
  });

  it("deletes by age, counts without changing anything on a dry run, and then writing goes on after the compacted bytes", () => {
    const { file, bodies } = capture(4);
    const size = statSync(payloadFileOf(file)).size;
    expect(pruneCapture(file, { openedBefore: 2500, dryRun: true })).toMatchObject({ sessions: 2 });
    expect(statSync(payloadFileOf(file)).size).toBe(size);
    expect(readBack(file).size).toBe(4);
    expect(pruneCapture(file, { openedBefore: 2500 }).sessions).toBe(2);
    expect([...readBack(file).keys()].sort()).toEqual([3, 4]);

    const db = openCapture(file);
    const { runId } = beginRun(db, file, { listen: [], version: "test", now: 200_000 });
    db.close();
    const writer = new CaptureWriter(file, runId);
    const more = pattern(9000, 9);
    writer.write({
      seq: 1,
      bytes: more.length,
      arena: new Uint8Array(more).buffer,
      ops: [
        { op: "open", sid: 10, engineId: 1, at: 200_000, clientHost: "::1", clientPort: 1, localHost: "::1", localPort: 2 },
        {
          op: "chunk",
          sid: 10,
          seq: 0,
          at: 200_001,
          direction: "down",
          data: { offset: 0, length: more.length },
          size: more.length,
          sent: null,
          verdict: null,
        },
      ],
    });
    writer.stop(200_002);
    const back = readBack(file);
    expect(back.get(10)!.equals(more)).toBe(true);
    expect(back.get(3)!.equals(bodies.get(3)!)).toBe(true);
  });

  it("refuses a file a live proxy is writing", () => {
    const { file } = capture(1);
    const db = openCapture(file);
    // A run of another live process on this host: the parent of this test process.
    db.prepare("INSERT INTO runs (started_at, pid, hostname, listen, socksmith_version) VALUES (1, ?, ?, '[]', 'x')").run(
      process.ppid,
      (db.prepare("SELECT hostname FROM runs LIMIT 1").get() as { hostname: string }).hostname,
    );
    db.close();
    expect(() => pruneCapture(file, { openedBefore: Number.MAX_SAFE_INTEGER })).toThrow(/being written by another socksmith \(pid \d+\)/);
    expect(readBack(file).size).toBe(1);
  });

  it("a swap cut short by a crash: readers read the new file while it is named, the next writer puts it in place", () => {
    const { file, bodies } = capture(3);
    pruneCapture(file, { filter: parseFilter("host:s2.test") });
    // Back to the moment after step 3: the rows point into the new file, still under its own name,
    // and the old file (here: junk of the old size) still under the usual name.
    const name = `${basename(file)}-payload.compacting`;
    copyFileSync(payloadFileOf(file), join(root, name));
    writeFileSync(payloadFileOf(file), pattern(80_000, 77));
    const db = new Database(file);
    db.prepare("UPDATE payload_file SET name = ?").run(name);
    db.close();
    const during = readBack(file);
    expect(during.get(1)!.equals(bodies.get(1)!) && during.get(3)!.equals(bodies.get(3)!)).toBe(true);

    // The next writer finishes the swap.
    const open = openCapture(file);
    const { runId } = beginRun(open, file, { listen: [], version: "test", now: 300_000 });
    open.close();
    new CaptureWriter(file, runId).stop(300_001);
    expect(existsSync(join(root, name))).toBe(false);
    const after = readBack(file);
    expect(after.get(1)!.equals(bodies.get(1)!) && after.get(3)!.equals(bodies.get(3)!)).toBe(true);
    const check = new Database(file, { readonly: true });
    expect(check.prepare("SELECT name FROM payload_file").get()).toEqual({ name: null });
    check.close();
  });
});
