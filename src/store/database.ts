/**
 * Opening a capture file: permissions, pragmas, migrations, and the bookkeeping of runs.
 *
 * - A new file is created 0600 before SQLite touches it; SQLite gives its -wal and -shm files
 *   the same mode.
 * - Writers bring the schema to SCHEMA_VERSION in one transaction (each MIGRATIONS step in
 *   order). Readers upgrade an older file the same way first; a newer file is refused.
 * - One process writes a file at a time: `beginRun` refuses a file whose last run is still alive
 *   on this host. Sessions left `open` by runs that died are marked `interrupted`, closed at the
 *   last time known for them (their last chunk or datagram, else when they opened).
 */
import { closeSync, constants, existsSync, openSync } from "node:fs";
import { hostname } from "node:os";
import Database from "better-sqlite3";
import { LAST_KNOWN_TIME, MIGRATIONS, SCHEMA_VERSION } from "./schema.js";

/** Page size of new capture files. */
export const PAGE_SIZE = 4096;

/** A capture file that cannot be used, with a message for the user. */
export class CaptureError extends Error {
  override readonly name = "CaptureError";
  constructor(
    message: string,
    /** SQLite's or the OS's code (SQLITE_READONLY, EACCES, …) when there is one. */
    readonly code?: string,
  ) {
    super(message);
  }
}

export interface OpenOptions {
  /** Open for reading only (the file must exist). */
  readonly readonly?: boolean;
}

/** Opens (creating when writing) a capture file and brings its schema up to date. */
export function openCapture(file: string, options: OpenOptions = {}): Database.Database {
  const readonly = options.readonly === true;
  if (readonly && !existsSync(file)) throw new CaptureError(`${file}: no such capture file`, "ENOENT");
  if (!readonly) createPrivate(file);
  let db: Database.Database;
  try {
    db = new Database(file, { readonly, fileMustExist: readonly });
  } catch (err) {
    throw describe(file, err);
  }
  try {
    // busy_timeout first: a reader may open while a writer holds the lock for a moment.
    db.pragma("busy_timeout = 5000");
    checkIsCapture(db, file);
    if (!readonly) {
      // Large payloads live in the payload file (payload-file.ts), so pages hold rows and small
      // payloads: 4 KiB pages. With 64 KiB ones (chosen when blobs were in the database) every
      // commit rewrote whole 64 KiB leaf and index pages for a few rows, and commits cost the
      // writer as much time as the payload itself (capture-on bulk 110-140 -> 190-265 MiB/s in
      // the bench with 4 KiB). Only a new, empty file takes it; WAL fixes it afterwards, so
      // files made before keep their 64 KiB pages.
      if (userVersion(db) === 0) db.pragma(`page_size = ${PAGE_SIZE}`);
      db.pragma("journal_mode = WAL");
      // No fsync, like pcap writers: a crash or kill -9 of socksmith loses nothing that was
      // committed (the OS has it), but a power loss or OS crash may lose or damage the last
      // moments. NORMAL (fsync at each checkpoint) halves the capture rate on a fast relay.
      db.pragma("synchronous = OFF");
      migrate(db, file);
    } else {
      const version = userVersion(db);
      if (version > SCHEMA_VERSION) {
        throw new CaptureError(`${file} was written by a newer socksmith (schema ${version}; this one reads ${SCHEMA_VERSION})`);
      }
      if (version < SCHEMA_VERSION) {
        // An older file: upgrade it once (a write), then read it as usual.
        db.close();
        openCapture(file).close();
        return openCapture(file, options);
      }
    }
    return db;
  } catch (err) {
    db.close();
    throw err instanceof CaptureError ? err : describe(file, err);
  }
}

/** Creates the file with mode 0600 if it does not exist (O_EXCL: never loosens an existing file). */
function createPrivate(file: string): void {
  try {
    closeSync(openSync(file, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o600));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return;
    throw describe(file, err);
  }
}

function userVersion(db: Database.Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}

/** A SQLite file with tables but no schema version is someone else's database: leave it alone. */
function checkIsCapture(db: Database.Database, file: string): void {
  if (userVersion(db) > 0) {
    const runs = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'runs'").get();
    if (runs === undefined) throw new CaptureError(`${file} is a SQLite database but not a socksmith capture`);
    return;
  }
  const tables = db.prepare("SELECT count(*) AS n FROM sqlite_schema").get() as { n: number };
  if (tables.n > 0) throw new CaptureError(`${file} is a SQLite database but not a socksmith capture`);
}

/** Runs every migration step the file has not had, in one transaction. */
export function migrate(db: Database.Database, file = "capture file", target = SCHEMA_VERSION): void {
  const from = userVersion(db);
  if (from > SCHEMA_VERSION) {
    throw new CaptureError(`${file} was written by a newer socksmith (schema ${from}; this one writes ${SCHEMA_VERSION})`);
  }
  if (from >= target) return;
  db.transaction(() => {
    for (let version = from; version < target; version++) MIGRATIONS[version]!(db);
    db.pragma(`user_version = ${target}`);
  })();
}

export interface RunInfo {
  readonly listen: readonly string[];
  readonly version: string;
  readonly now: number;
}

export interface BegunRun {
  readonly runId: number;
  /** Session ids of this run are `sessionBase + engine id`. */
  readonly sessionBase: number;
  /** Sessions of earlier runs that were still open and are now marked interrupted. */
  readonly interrupted: number;
}

/**
 * Starts a run: refuses a file another live process is writing, marks what dead runs left open
 * as interrupted, and records this run.
 */
export function beginRun(db: Database.Database, file: string, info: RunInfo): BegunRun {
  return db.transaction((): BegunRun => {
    refuseLiveWriter(db, file);
    const open = db.prepare("SELECT id, pid, hostname FROM runs WHERE ended_at IS NULL").all() as { id: number; pid: number; hostname: string }[];
    let interrupted = 0;
    for (const run of open) {
      // The run's last sign of life is when it last recorded something.
      const last = db
        .prepare(
          `SELECT max(t) AS t FROM (
             SELECT max(opened_at) AS t FROM sessions WHERE run_id = ?
             UNION ALL SELECT max(c.at) FROM chunks c JOIN sessions s ON s.id = c.session_id WHERE s.run_id = ?)`,
        )
        .get(run.id, run.id) as { t: number | null };
      interrupted += db
        .prepare(
          `UPDATE sessions SET status = 'interrupted', close_reason = 'interrupted', closed_at = ${LAST_KNOWN_TIME} WHERE run_id = ? AND status = 'open'`,
        )
        .run(run.id).changes;
      db.prepare("UPDATE runs SET ended_at = ? WHERE id = ?").run(last.t ?? info.now, run.id);
    }
    const runId = Number(
      db
        .prepare("INSERT INTO runs (started_at, pid, hostname, listen, socksmith_version) VALUES (?, ?, ?, ?, ?)")
        .run(info.now, process.pid, hostname(), JSON.stringify(info.listen), info.version).lastInsertRowid,
    );
    const max = db.prepare("SELECT coalesce(max(id), 0) AS id FROM sessions").get() as { id: number };
    return { runId, sessionBase: max.id, interrupted };
  })();
}

/** Throws when another live process on this host has a run on the file that has not ended. */
export function refuseLiveWriter(db: Database.Database, file: string): void {
  const open = db.prepare("SELECT pid, hostname FROM runs WHERE ended_at IS NULL").all() as { pid: number; hostname: string }[];
  for (const run of open) {
    if (run.hostname === hostname() && run.pid !== process.pid && isAlive(run.pid)) {
      throw new CaptureError(`${file} is being written by another socksmith (pid ${run.pid})`, "EBUSY");
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Turns SQLite's and the OS's errors into one line a user can act on. */
export function describe(file: string, err: unknown): CaptureError {
  const e = err as { code?: string; message?: string };
  const code = e.code;
  const reason =
    code === "SQLITE_READONLY" || code === "EACCES" || code === "EROFS" || code === "EPERM"
      ? "permission denied or read-only file system"
      : code === "SQLITE_FULL" || code === "ENOSPC"
        ? "disk full"
        : code === "SQLITE_NOTADB"
          ? "not a SQLite database"
          : code === "SQLITE_CANTOPEN" || code === "ENOENT" || code === "ENOTDIR"
            ? "cannot open the file (does its directory exist?)"
            : (e.message ?? String(err));
  return new CaptureError(`cannot use capture file ${file}: ${reason}`, code);
}
