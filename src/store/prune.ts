/**
 * `socksmith prune`: deletes sessions from a capture and gives their space back, in the database
 * (VACUUM) and in the payload file (compacted).
 *
 * Nothing may be writing the file (a live run is refused, as a second writer is). The steps, each
 * leaving a capture every reader and writer can use if the process dies there:
 * 1. One transaction deletes the sessions and their chunks, datagrams (rows and batches), events and TLS rows (links
 *    to them from replays are cleared). The payload file still holds their bytes; no row uses them.
 * 2. The bytes rows still use are copied, in file order, to a new file beside the capture, synced.
 * 3. One transaction points every row at its new place and names the new file in
 *    `payload_file.name`: from here readers read the new file (payload-file.ts).
 * 4. The new file is renamed over the old one, and a last transaction clears the name. A crash
 *    between 3 and 4 is finished by the next writer (`finishSwap`).
 */
import { closeSync, constants, existsSync, fsyncSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type Database from "better-sqlite3";
import { registerFilterFunctions, toSql, type Filter } from "../filter/index.js";
import { batchPayloads } from "./datagram-batches.js";
import { CaptureError, describe, openCapture, refuseLiveWriter } from "./database.js";
import { captureSize, finishSwap, PayloadReader, payloadFileOf, swapFileOf } from "./payload-file.js";

export interface PruneOptions {
  /** Delete the sessions that match this filter… */
  readonly filter?: Filter;
  /** …and opened before this time (ms since the epoch). With neither, nothing is deleted (compaction only). */
  readonly openedBefore?: number;
  /** Count what would go, change nothing. */
  readonly dryRun?: boolean;
  /** "Now" for `dur` terms of open sessions (default Date.now()). */
  readonly now?: number;
}

export interface PruneResult {
  /** Sessions deleted (or that would be, with dryRun). */
  readonly sessions: number;
  /** The capture's size on disk (database, WAL and payload file) before and after. */
  readonly bytesBefore: number;
  readonly bytesAfter: number;
}

export function pruneCapture(file: string, options: PruneOptions): PruneResult {
  if (!existsSync(file)) throw new CaptureError(`${file}: no such capture file`, "ENOENT");
  const bytesBefore = captureSize(file);
  const db = openCapture(file);
  let payload: PayloadReader;
  try {
    payload = new PayloadReader(file, swapFileOf(db, file));
  } catch (err) {
    db.close();
    throw describe(file, err);
  }
  let sessions: number;
  try {
    refuseLiveWriter(db, file);
    registerFilterFunctions(db, (at, dataBytes, sentBytes) => payload.read({ at, dataBytes, sentBytes }), batchPayloads);
    const { where, params } = selection(options);
    if (options.dryRun === true) {
      const n = (db.prepare(`SELECT count(*) AS n FROM sessions WHERE ${where}`).get(...params) as { n: number }).n;
      return { sessions: n, bytesBefore, bytesAfter: bytesBefore };
    }
    finishSwap(db, file);
    sessions = deleteSessions(db, where, params);
    payload.close();
    compactPayload(db, file);
    db.exec("VACUUM");
    db.pragma("wal_checkpoint(TRUNCATE)");
  } catch (err) {
    throw err instanceof CaptureError ? err : describe(file, err);
  } finally {
    payload.close();
    db.close();
  }
  return { sessions, bytesBefore, bytesAfter: captureSize(file) };
}

/** The WHERE clause over `sessions` for the options (`0`: nothing). */
function selection(options: PruneOptions): { where: string; params: unknown[] } {
  const parts: string[] = [];
  const params: unknown[] = [];
  if (options.filter !== undefined) {
    const sql = toSql(options.filter, { now: options.now ?? Date.now() });
    parts.push(`(${sql.where})`);
    params.push(...sql.params);
  }
  if (options.openedBefore !== undefined) {
    parts.push("opened_at < ?");
    params.push(options.openedBefore);
  }
  return { where: parts.length === 0 ? "0" : parts.join(" AND "), params };
}

function deleteSessions(db: Database.Database, where: string, params: unknown[]): number {
  return db.transaction(() => {
    db.exec("DROP TABLE IF EXISTS temp.doomed");
    db.prepare(`CREATE TEMP TABLE doomed AS SELECT id FROM sessions WHERE ${where}`).run(...params);
    for (const table of ["chunks", "datagram_rows", "datagram_batches", "events", "tls"])
      db.exec(`DELETE FROM ${table} WHERE session_id IN (SELECT id FROM temp.doomed)`);
    db.exec("UPDATE sessions SET replay_of = NULL WHERE replay_of IN (SELECT id FROM temp.doomed)");
    db.exec("UPDATE sessions SET served_from = NULL WHERE served_from IN (SELECT id FROM temp.doomed)");
    const n = db.prepare("DELETE FROM sessions WHERE id IN (SELECT id FROM temp.doomed)").run().changes;
    db.exec("DROP TABLE temp.doomed");
    return n;
  })();
}

interface Placed {
  readonly table: "chunks" | "datagrams";
  readonly id: number;
  readonly at: number;
  readonly bytes: number;
}

/** Steps 2–4 of the file comment; nothing to do when every byte of the payload file is in use. */
function compactPayload(db: Database.Database, file: string): void {
  const current = payloadFileOf(file);
  const size = existsSync(current) ? statSync(current).size : 0;
  const used = db
    .prepare(
      `SELECT coalesce(sum(payload_data + coalesce(payload_sent, 0)), 0) AS n FROM (
         SELECT payload_data, payload_sent FROM chunks WHERE payload_at IS NOT NULL
         UNION ALL SELECT payload_data, payload_sent FROM datagram_rows WHERE payload_at IS NOT NULL)`,
    )
    .get() as { n: number };
  if (used.n === size) return;
  const name = `${basename(file)}-payload.compacting`;
  const next = join(dirname(file), name);
  const src = openSync(current, constants.O_RDONLY);
  const dst = openSync(next, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o600);
  const moved: { table: "chunks" | "datagrams"; id: number; at: number }[] = [];
  let end = 0;
  try {
    const rows = db.prepare(
      `SELECT 'chunks' AS "table", id, payload_at AS at, payload_data + coalesce(payload_sent, 0) AS bytes FROM chunks WHERE payload_at IS NOT NULL
       UNION ALL
       SELECT 'datagrams', id, payload_at, payload_data + coalesce(payload_sent, 0) FROM datagram_rows WHERE payload_at IS NOT NULL
       ORDER BY at`,
    );
    const buffer = Buffer.allocUnsafe(1024 * 1024);
    for (const row of rows.iterate() as IterableIterator<Placed>) {
      copy(src, row.at, dst, end, row.bytes, buffer, current);
      moved.push({ table: row.table, id: row.id, at: end });
      end += row.bytes;
    }
    fsyncSync(dst);
  } catch (err) {
    closeSync(dst);
    rmSync(next, { force: true });
    throw err;
  } finally {
    closeSync(src);
  }
  closeSync(dst);
  const chunk = db.prepare("UPDATE chunks SET payload_at = ? WHERE id = ?");
  const datagram = db.prepare("UPDATE datagram_rows SET payload_at = ? WHERE id = ?");
  db.transaction(() => {
    for (const m of moved) (m.table === "chunks" ? chunk : datagram).run(m.at, m.id);
    db.prepare("UPDATE payload_file SET bytes = ?, name = ? WHERE id = 1").run(end, name);
  })();
  renameSync(next, current);
  db.prepare("UPDATE payload_file SET name = NULL WHERE id = 1").run();
}

function copy(src: number, from: number, dst: number, to: number, length: number, buffer: Buffer, file: string): void {
  let done = 0;
  while (done < length) {
    const want = Math.min(buffer.length, length - done);
    const got = readSync(src, buffer, 0, want, from + done);
    if (got === 0) throw new CaptureError(`${file} ends before byte ${from + length} that its capture refers to: the payload file was cut or replaced`);
    let written = 0;
    while (written < got) written += writeSync(dst, buffer, written, got - written, to + done + written);
    done += got;
  }
}
