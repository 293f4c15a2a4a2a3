/**
 * Opening capture files: permissions, migrations from every older version, files that are not
 * ours or are newer, a file another live process writes, and sessions left open by a crash.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { CaptureError, PAGE_SIZE, beginRun, migrate, openCapture } from "../../src/store/database.js";
import { MIGRATIONS, SCHEMA_VERSION } from "../../src/store/schema.js";
import { CaptureReader } from "../../src/store/reader.js";

const root = mkdtempSync(join(tmpdir(), "socksmith-db-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(root, `f${++n}.db`);

const run = { listen: ["127.0.0.1:1080"], version: "test", now: 1_700_000_000_000 };

/** A representative row set that every schema version can hold. */
function seed(db: Database.Database): void {
  db.prepare("INSERT INTO runs (id, started_at, pid, hostname, listen, socksmith_version) VALUES (1, 1, 1, 'h', '[]', 'old')").run();
  db.prepare(
    "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, status) VALUES (1, 1, 1, 2, '127.0.0.1', 5000, '127.0.0.1', 1080, 'ok')",
  ).run();
  db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size) VALUES (1, 0, 3, 'up', x'474554', 3)").run();
}

describe("openCapture", () => {
  it("creates a new file 0600 with the current schema in WAL mode", () => {
    const file = fresh();
    const db = openCapture(file);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.pragma("page_size", { simple: true })).toBe(PAGE_SIZE);
    db.close();
  });

  it("never loosens an existing file's mode", () => {
    const file = fresh();
    openCapture(file).close();
    chmodSync(file, 0o400 | 0o200);
    openCapture(file).close();
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("migrates from every older version to the current one, keeping the data", () => {
    for (let from = 1; from <= SCHEMA_VERSION; from++) {
      const file = fresh();
      const db = new Database(file);
      for (let v = 0; v < from; v++) MIGRATIONS[v]!(db);
      db.pragma(`user_version = ${from}`);
      seed(db);
      db.close();
      const upgraded = openCapture(file);
      expect(upgraded.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
      expect(upgraded.prepare("SELECT count(*) AS n FROM chunks").get()).toEqual({ n: 1 });
      upgraded.close();
      const reader = new CaptureReader(file);
      expect(reader.session(1)).toMatchObject({ client_port: 5000, status: "ok" });
      reader.close();
    }
  });

  it("migrate() applies each step once and is a no-op on a current file", () => {
    const db = new Database(":memory:");
    migrate(db);
    migrate(db);
    expect(db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    db.close();
  });

  it("refuses a SQLite file that is not a capture, and one from a newer socksmith", () => {
    const other = fresh();
    const db = new Database(other);
    db.exec("CREATE TABLE notes (x)");
    db.close();
    expect(() => openCapture(other)).toThrow(/is a SQLite database but not a socksmith capture/);
    expect(() => new CaptureReader(other)).toThrow(CaptureError);

    const newer = fresh();
    openCapture(newer).close();
    const raw = new Database(newer);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => openCapture(newer)).toThrow(/written by a newer socksmith/);
    expect(() => new CaptureReader(newer)).toThrow(/written by a newer socksmith/);
  });

  it("explains files it cannot open: not SQLite, missing directory, read-only directory", () => {
    const garbage = fresh();
    writeFileSync(garbage, "this is not a database at all, just text ".repeat(200));
    expect(() => openCapture(garbage)).toThrow(/not a SQLite database/);
    expect(() => openCapture(join(root, "no-such-dir", "x.db"))).toThrow(/cannot use capture file .*x\.db/);
    expect(() => new CaptureReader(join(root, "missing.db"))).toThrow(/no such capture file/);
    if (process.getuid?.() !== 0) {
      const locked = join(root, "locked");
      mkdirSync(locked, { mode: 0o500 });
      expect(() => openCapture(join(locked, "x.db"))).toThrow(/permission denied or read-only/);
    }
  });
});

describe("beginRun", () => {
  it("gives each run its own session ids after the ones already in the file", () => {
    const file = fresh();
    const db = openCapture(file);
    const first = beginRun(db, file, run);
    expect(first).toEqual({ runId: 1, sessionBase: 0, interrupted: 0 });
    db.prepare(
      "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, status) VALUES (7, 1, 7, 1, 'a', 1, 'b', 2, 'ok')",
    ).run();
    db.prepare("UPDATE runs SET ended_at = 5").run();
    const second = beginRun(db, file, run);
    expect(second).toEqual({ runId: 2, sessionBase: 7, interrupted: 0 });
    db.close();
  });

  it("refuses a file that a live process is writing", () => {
    const file = fresh();
    const db = openCapture(file);
    // The parent process (vitest's) is alive and is not us.
    db.prepare("INSERT INTO runs (started_at, pid, hostname, listen, socksmith_version) VALUES (1, ?, ?, '[]', 'x')").run(process.ppid, hostname());
    expect(() => beginRun(db, file, run)).toThrow(/being written by another socksmith \(pid \d+\)/);
    db.close();
  });

  it("marks the sessions a dead run left open as interrupted, and ends that run", () => {
    const file = fresh();
    const db = openCapture(file);
    // A pid that cannot be alive.
    db.prepare("INSERT INTO runs (id, started_at, pid, hostname, listen, socksmith_version) VALUES (1, 1, 2147483646, ?, '[]', 'x')").run(hostname());
    db.prepare(
      "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, status) VALUES (1, 1, 1, 10, 'a', 1, 'b', 2, 'open')",
    ).run();
    db.prepare(
      "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, status) VALUES (2, 1, 2, 20, 'a', 1, 'b', 2, 'ok')",
    ).run();
    const begun = beginRun(db, file, run);
    expect(begun.interrupted).toBe(1);
    expect(db.prepare("SELECT id, status, close_reason FROM sessions ORDER BY id").all()).toEqual([
      { id: 1, status: "interrupted", close_reason: "interrupted" },
      { id: 2, status: "ok", close_reason: null },
    ]);
    expect(db.prepare("SELECT ended_at FROM runs WHERE id = 1").get()).toEqual({ ended_at: 20 });
    db.close();
  });

  it("gives interrupted sessions a closed_at: their last chunk or datagram, else when they opened", () => {
    const file = fresh();
    const db = openCapture(file);
    db.prepare("INSERT INTO runs (id, started_at, pid, hostname, listen, socksmith_version) VALUES (1, 1, 2147483646, ?, '[]', 'x')").run(hostname());
    const open = db.prepare(
      "INSERT INTO sessions (id, run_id, engine_id, opened_at, client_host, client_port, local_host, local_port, status) VALUES (?, 1, ?, ?, 'a', 1, 'b', 2, 'open')",
    );
    open.run(1, 1, 10);
    open.run(2, 2, 20);
    open.run(3, 3, 30);
    db.prepare("INSERT INTO chunks (session_id, seq, at, direction, data, size) VALUES (1, 0, 15, 'up', x'00', 1), (1, 1, 17, 'down', x'00', 1)").run();
    db.prepare(
      "INSERT INTO datagrams (session_id, seq, at, direction, from_host, from_port, data, size, verdict) VALUES (2, 0, 25, 'up', 'a', 1, x'00', 1, 'relayed')",
    ).run();
    beginRun(db, file, run);
    expect(db.prepare("SELECT id, status, closed_at FROM sessions ORDER BY id").all()).toEqual([
      { id: 1, status: "interrupted", closed_at: 17 },
      { id: 2, status: "interrupted", closed_at: 25 },
      { id: 3, status: "interrupted", closed_at: 30 },
    ]);
    db.close();
  });

  it("a file from schema 1 gets closed_at for the sessions it already marked interrupted, and the uncaptured count column", () => {
    const file = fresh();
    const db = new Database(file);
    MIGRATIONS[0]!(db);
    db.pragma("user_version = 1");
    seed(db);
    db.prepare("UPDATE sessions SET status = 'interrupted', closed_at = NULL").run();
    db.close();
    const upgraded = openCapture(file);
    expect(upgraded.prepare("SELECT status, closed_at, uncaptured_datagrams FROM sessions").get()).toEqual({
      status: "interrupted",
      closed_at: 3,
      uncaptured_datagrams: 0,
    });
    upgraded.close();
  });
});
