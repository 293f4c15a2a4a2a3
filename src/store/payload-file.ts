/**
 * The capture's payload file: bulk payload bytes, appended once, beside the SQLite file.
 *
 * Why: SQLite in WAL mode writes every byte twice (to the WAL, then to the database at the
 * checkpoint), so a capture of a fast relay ran at about half the disk's rate and stalled the
 * relay for the length of each checkpoint. Rows whose payload (data plus sent) is larger than
 * INLINE_MAX keep only metadata in SQLite and point into `<capture>-payload`, a plain file that
 * is only ever appended to; small rows stay inline, so `sqlite3` shows most messages as they were.
 *
 * - A row's external payload is `payload_at` (offset of its data), `payload_data` bytes of data,
 *   then `payload_sent` bytes as sent (NULL when no hook changed the row). Its `data` column is
 *   an empty blob and its `sent` column NULL or an empty blob, so `sent IS NULL` keeps its meaning.
 * - The writer appends a batch's external payload before the transaction that inserts the rows,
 *   and that transaction records the file's committed length (`payload_file.bytes`): every row a
 *   reader sees points at bytes already written, and kill -9 between the two leaves only bytes no
 *   row refers to, cut off when the next writer opens the file.
 * - Readers read exactly what they ask for (a cap reads a prefix), with no lock: the file only grows
 *   under what is committed.
 * - `socksmith prune` replaces the file with a compacted one (prune.ts). While it swaps,
 *   `payload_file.name` names the new file, which stands in until it has been renamed into place;
 *   `finishSwap` completes a swap a crash interrupted, and readers look for the named file first.
 *   A reader that has the old file open when a prune swaps it reads wrong bytes: prune refuses a
 *   live writer but cannot see readers (the README says to close them).
 */
import type Database from "better-sqlite3";
import { closeSync, constants, existsSync, fstatSync, ftruncateSync, openSync, readSync, renameSync, statSync, writevSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { CaptureError } from "./database.js";

/** Rows with at most this many payload bytes (data + sent) stay inline in SQLite. */
export const INLINE_MAX = 4096;

/** The payload file of a capture file. */
export function payloadFileOf(captureFile: string): string {
  return `${captureFile}-payload`;
}

/** The capture's size on disk: the database, its WAL and its payload file, in bytes (absent ones count 0). */
export function captureSize(captureFile: string): number {
  let total = 0;
  for (const f of [captureFile, `${captureFile}-wal`, payloadFileOf(captureFile)]) {
    try {
      total += statSync(f).size;
    } catch {
      // Absent: counts as nothing.
    }
  }
  return total;
}

/** The file a swap in progress named (`payload_file.name`, beside the capture file), or undefined. */
export function swapFileOf(db: Database.Database, captureFile: string): string | undefined {
  const row = db.prepare("SELECT name FROM payload_file WHERE id = 1").get() as { name: string | null } | undefined;
  if (row === undefined || row.name === null) return undefined;
  // Only a bare file name beside the capture: a crafted name cannot point elsewhere.
  return join(dirname(captureFile), basename(row.name));
}

/** Completes a swap a crash interrupted: the named file into place (unless it already is), then the name cleared. */
export function finishSwap(db: Database.Database, captureFile: string): void {
  const swap = swapFileOf(db, captureFile);
  if (swap === undefined) return;
  if (existsSync(swap)) renameSync(swap, payloadFileOf(captureFile));
  db.prepare("UPDATE payload_file SET name = NULL WHERE id = 1").run();
}

/** Where a row's payload lives when it is external (see the file comment). */
export interface ExternalPayload {
  readonly at: number;
  readonly dataBytes: number;
  /** null: the row has no separate bytes as sent. */
  readonly sentBytes: number | null;
}

/** The writer's end: appends at the committed length, positionally (a failed batch is overwritten by the next). */
export class PayloadAppender {
  private readonly fd: number;
  /** Where the next append goes. */
  private end: number;

  /**
   * Opens (creating 0600) the payload file of `captureFile` and cuts it to `committed`, the
   * length the capture's rows refer to. `maxBytes` (tests) makes a longer file fail as a full disk.
   */
  constructor(
    captureFile: string,
    committed: number,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {
    const file = payloadFileOf(captureFile);
    try {
      this.fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o600);
    } catch (err) {
      throw new CaptureError(`cannot open the payload file ${file}: ${(err as Error).message}`, (err as NodeJS.ErrnoException).code);
    }
    const size = fstatSync(this.fd).size;
    if (size < committed) {
      closeSync(this.fd);
      throw new CaptureError(`${file} is shorter (${size} bytes) than its capture says (${committed}): the payload file was cut or replaced`);
    }
    if (size > committed) ftruncateSync(this.fd, committed);
    this.end = committed;
  }

  /** Where the next append goes (the committed length, once the batch's transaction commits). */
  get length(): number {
    return this.end;
  }

  /** Writes `pieces` one after another at the end; returns the offset of the first. */
  append(pieces: readonly Uint8Array[]): number {
    const at = this.end;
    let total = 0;
    for (const p of pieces) total += p.length;
    if (at + total > this.maxBytes) throw Object.assign(new Error("the payload file reached its test limit"), { code: "ENOSPC" });
    let written = 0;
    // writev may write less than asked (a signal, a full disk): go on from where it stopped.
    let rest = pieces.filter((p) => p.length > 0);
    while (written < total) {
      const n = writevSync(this.fd, rest as Uint8Array[], at + written);
      if (n === 0) throw Object.assign(new Error("no progress writing the payload file"), { code: "EIO" });
      written += n;
      rest = skip(rest, n);
    }
    this.end = at + total;
    return at;
  }

  /** Forgets what was appended since `length` was `to` (the batch's transaction failed). */
  rewind(to: number): void {
    this.end = to;
  }

  close(): void {
    closeSync(this.fd);
  }
}

function skip(pieces: readonly Uint8Array[], bytes: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let left = bytes;
  for (const p of pieces) {
    if (left >= p.length) {
      left -= p.length;
      continue;
    }
    out.push(left > 0 ? p.subarray(left) : p);
    left = 0;
  }
  return out;
}

/** The readers' end: opened on the first external row, read-only, never locked. */
export class PayloadReader {
  private fd: number | undefined;
  private opened: string | undefined;

  /**
   * `swapFile`: the file a swap in progress named when the reader opened the capture (swapFileOf);
   * looked up once, not per read, as reads happen inside SQLite functions, where the connection
   * cannot run another query.
   */
  constructor(
    private readonly captureFile: string,
    private readonly swapFile?: string,
  ) {}

  get file(): string {
    return this.opened ?? payloadFileOf(this.captureFile);
  }

  /**
   * A row's data and sent bytes, each cut to `cap` bytes (whole without a cap). Throws a
   * CaptureError when the file is missing or shorter than the row says.
   */
  read(where: ExternalPayload, cap?: number): { data: Buffer; sent: Buffer | null } {
    const limit = cap === undefined ? Number.POSITIVE_INFINITY : Math.max(0, Math.floor(cap));
    const data = this.slice(where.at, Math.min(where.dataBytes, limit));
    const sent = where.sentBytes === null ? null : this.slice(where.at + where.dataBytes, Math.min(where.sentBytes, limit));
    return { data, sent };
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private slice(at: number, length: number): Buffer {
    const out = Buffer.allocUnsafe(length);
    let got = 0;
    const fd = this.open();
    while (got < length) {
      const n = readSync(fd, out, got, length - got, at + got);
      if (n === 0) throw new CaptureError(`${this.file} ends before byte ${at + length} that its capture refers to: the payload file was cut or replaced`);
      got += n;
    }
    return out;
  }

  private open(): number {
    if (this.fd !== undefined) return this.fd;
    // During a swap the named file holds the bytes until it is renamed into place, then the usual one does.
    const swap = this.swapFile;
    if (swap !== undefined) {
      try {
        this.fd = openSync(swap, constants.O_RDONLY);
        this.opened = swap;
        return this.fd;
      } catch {
        // Renamed already: the usual name below.
      }
    }
    const file = payloadFileOf(this.captureFile);
    try {
      this.fd = openSync(file, constants.O_RDONLY);
      this.opened = file;
      return this.fd;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === "ENOENT" ? "is missing (keep it beside the capture file: the two go together)" : `cannot be read (${code ?? String(err)})`;
      throw new CaptureError(`${file} ${why}`, code);
    }
  }
}
