/**
 * The writer's table of datagram "shapes": the columns a UDP association's datagrams repeat
 * (direction, peer, from, to, verdict), kept once in a TEMP table of the writer's connection so
 * that a datagram row binds six values instead of twenty and its INSERT copies the rest from
 * there (`INSERT INTO datagrams … SELECT ?, …, s.* FROM temp.datagram_shapes s WHERE s.id = ?`).
 * What the file holds is unchanged: every datagram is a whole row of `datagrams`; the TEMP table
 * lives in the writer's connection only and no reader sees it.
 *
 * Why: binding a value costs better-sqlite3 about as much as SQLite spends storing it, and a
 * datagram row's strings (hosts, type, direction, verdict) were most of its 20 values. In a
 * micro-benchmark of 16-row INSERTs into a WAL file with the capture's two indexes, a row cost
 * 1.1-1.2 us this way against 1.5-1.8 us binding all of it.
 *
 * A record's shape is found by comparing its slots with the few shapes used last in the batch
 * (string slots are indexes into the batch's strings, so the comparison is of numbers), then by
 * its strings in a map that outlives batches. The table is emptied when it holds MAX_SHAPES (a
 * client talking to many peers) and after a failed batch (its rollback took the batch's new rows).
 */
import type Database from "better-sqlite3";
import { R_DIRECTION, R_FROM_HOST, R_FROM_PORT, R_PEER_HOST, R_PEER_PORT, R_PEER_TYPE, R_TO_HOST, R_TO_PORT, R_VERDICT } from "./batch.js";

/** A shape's columns, in the order of the TEMP table and of the INSERT's copy of them. */
export const SHAPE_COLUMNS = "direction, peer_type, peer_host, peer_port, from_host, from_port, to_host, to_port, verdict";

/** The record slots of a shape, in SHAPE_COLUMNS order. */
const SLOTS = [R_DIRECTION, R_PEER_TYPE, R_PEER_HOST, R_PEER_PORT, R_FROM_HOST, R_FROM_PORT, R_TO_HOST, R_TO_PORT, R_VERDICT] as const;
/** Which of SLOTS hold a string index (the others are numbers, NaN for null; direction is 0 or 1). */
const STRING_SLOT = [false, true, true, false, true, false, true, false, true] as const;

/** Shapes kept before the table is emptied. */
export const MAX_SHAPES = 4096;
/** Shapes compared by slots before the map is asked: an echo's two directions, a few peers. */
const RECENT = 4;

export class DatagramShapes {
  private readonly ids = new Map<string, number>();
  private readonly insert: Database.Statement;
  private readonly empty: Database.Statement;
  private next = 1;
  /** The slots of the shapes used last in this batch (RECENT rows of SLOTS.length), and their ids. */
  private readonly recentSlots = new Float64Array(RECENT * SLOTS.length);
  private readonly recentIds = new Array<number>(RECENT).fill(0);
  private recentCount = 0;
  private recentNext = 0;

  constructor(db: Database.Database) {
    // A TEMP table in memory, not in a temporary file.
    db.pragma("temp_store = MEMORY");
    db.exec(`CREATE TEMP TABLE IF NOT EXISTS datagram_shapes (
      id INTEGER PRIMARY KEY, direction TEXT NOT NULL, peer_type TEXT, peer_host TEXT, peer_port INTEGER,
      from_host TEXT NOT NULL, from_port INTEGER NOT NULL, to_host TEXT, to_port INTEGER, verdict TEXT NOT NULL)`);
    this.insert = db.prepare(`INSERT INTO temp.datagram_shapes (id, ${SHAPE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.empty = db.prepare("DELETE FROM temp.datagram_shapes");
  }

  /** A new batch: its string indexes mean other strings, so the recent shapes no longer match. */
  beginBatch(): void {
    this.recentCount = 0;
    this.recentNext = 0;
  }

  /** Before an INSERT of up to `rows` datagrams: empties the table if that many new shapes might not fit. */
  makeRoom(rows: number): void {
    if (this.ids.size + rows > MAX_SHAPES) this.forget();
  }

  /** Forgets every shape and empties the table (after a failed batch: its rollback removed the rows it added). */
  forget(): void {
    this.empty.run();
    this.ids.clear();
    this.beginBatch();
  }

  /** The id of the shape of the datagram record at slot `b` of `records`, added to the table if new. */
  idOf(records: Float64Array, b: number, strings: readonly string[]): number {
    const recent = this.recentSlots;
    for (let r = 0; r < this.recentCount; r++) {
      const at = r * SLOTS.length;
      let same = true;
      for (let s = 0; s < SLOTS.length; s++) {
        const a = records[b + SLOTS[s]!]!;
        const c = recent[at + s]!;
        // NaN (a null port) equals NaN here.
        if (a !== c && !(Number.isNaN(a) && Number.isNaN(c))) {
          same = false;
          break;
        }
      }
      if (same) return this.recentIds[r]!;
    }
    const values = SLOTS.map((slot, s) => {
      const v = records[b + slot]!;
      if (s === 0) return v === 0 ? "up" : "down";
      if (STRING_SLOT[s]) return v < 0 ? null : strings[v]!;
      return Number.isNaN(v) ? null : v;
    });
    const key = JSON.stringify(values);
    let id = this.ids.get(key);
    if (id === undefined) {
      id = this.next++;
      this.insert.run(id, ...values);
      this.ids.set(key, id);
    }
    const r = this.recentNext;
    this.recentNext = (r + 1) % RECENT;
    if (this.recentCount < RECENT) this.recentCount++;
    for (let s = 0; s < SLOTS.length; s++) recent[r * SLOTS.length + s] = records[b + SLOTS[s]!]!;
    this.recentIds[r] = id;
    return id;
  }
}
