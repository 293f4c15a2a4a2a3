/**
 * Datagram batches (schema 6): the datagrams of a UDP association kept as one row per session per
 * flush, not one row per datagram. Both sides of the format live here: `DatagramBatcher` builds
 * the rows in the writer, `decodeBatch` reads them back for the reader.
 *
 * Why: a row of `datagrams` cost the writer about 1.1 us in SQLite (the B-tree insert, its two
 * indexes, the WAL), so with capture on an echo of two datagrams spent about 4 us in the writer
 * thread, which on a two-core machine took its core from the relay and the peers and held
 * capture-on UDP to 0.67x of capture off. A batch row costs about as much as one datagram row and
 * carries up to BATCH_ROWS datagrams.
 *
 * A `datagram_batches` row:
 * - `first_id`: the id of its first datagram; its datagrams are `first_id` … `first_id + count - 1`,
 *   in the order they were recorded. Ids are shared with `datagram_rows` (the writer hands them
 *   out from one counter), and within a session they follow the order of recording.
 * - `min_seq`, `max_seq`: its first and last seq. Seqs rise within a batch and from one batch of a
 *   session to the next (a datagram recorded after a later one, which an async hook can cause,
 *   is a plain row instead), so a page of a session's datagrams in seq order is an index range.
 * - `at`: its first datagram's time; `last_at` its last one's.
 * - `shapes`: JSON array of the columns its datagrams repeat, each
 *   `[direction, peer_type, peer_host, peer_port, from_host, from_port, to_host, to_port, verdict, reason, detail]`.
 * - `items`: JSON array, per datagram `[seq, at - batch at, shape index, size, data offset, data length]`,
 *   plus `, sent offset, sent length` when a hook changed it; offsets are into `payload`.
 * - `payload`: the datagrams' bytes (as received, then as sent), at most BATCH_BYTES unless one
 *   datagram alone is larger (up to INLINE_MAX; larger ones are rows, their payload in the payload file).
 *
 * The `datagrams` view (schema.ts) shows rows and batches as the rows they were before schema 6.
 */
import {
  R_AT,
  R_DATA_LENGTH,
  R_DATA_OFFSET,
  R_DETAIL,
  R_DIRECTION,
  R_FROM_HOST,
  R_FROM_PORT,
  R_PEER_HOST,
  R_PEER_PORT,
  R_PEER_TYPE,
  R_REASON,
  R_SENT_LENGTH,
  R_SENT_OFFSET,
  R_SEQ,
  R_SID,
  R_SIZE,
  R_TO_HOST,
  R_TO_PORT,
  R_VERDICT,
} from "./batch.js";
import { CaptureError } from "./database.js";
import type { DatagramMeta } from "./reader.js";
import type { DatagramRow } from "./schema.js";

/** Datagrams in one batch row at most. */
export const BATCH_ROWS = 512;
/**
 * Payload bytes in one batch row at most (one larger datagram gets a batch of its own). Reading
 * one datagram reads its batch's whole payload (SQLite reads a whole blob even for substr()), so
 * this bounds what a page of the TUI or a row of the `datagrams` view costs.
 */
export const BATCH_BYTES = 32 * 1024;

/** The columns of `datagram_batches` the writer fills, in INSERT order. */
export const BATCH_COLUMNS = "first_id, session_id, count, min_seq, max_seq, at, last_at, shapes, items, payload";

/** The record slots of a shape, in the order of a `shapes` entry. */
const SLOTS = [R_DIRECTION, R_PEER_TYPE, R_PEER_HOST, R_PEER_PORT, R_FROM_HOST, R_FROM_PORT, R_TO_HOST, R_TO_PORT, R_VERDICT, R_REASON, R_DETAIL] as const;
/** Which of SLOTS hold a string index (-1: null); the others are numbers (NaN: null), direction 0 (up) or 1 (down). */
const STRING_SLOT = [false, true, true, false, true, false, true, false, true, true, true] as const;
const SHAPE_WIDTH = SLOTS.length;
/** Shapes compared slot by slot before a run looks them up by key: an echo's two directions, a few peers. */
const SCAN_SHAPES = 8;

/** One session's datagrams being gathered into a batch row. */
interface Run {
  readonly sid: number;
  readonly minSeq: number;
  maxSeq: number;
  readonly at: number;
  lastAt: number;
  count: number;
  /** SHAPE_WIDTH slot values per shape (NaN stored as -1), and each shape's JSON. */
  readonly shapeSlots: number[];
  readonly shapeJson: string[];
  /** By key, once the run has more than SCAN_SHAPES shapes. */
  shapeKeys: Map<string, number> | undefined;
  lastShape: number;
  readonly items: AsciiBuilder;
  /** Arena ranges of its payload, (offset, length) pairs, adjacent ones merged. */
  readonly ranges: number[];
  bytes: number;
}

/** What the writer inserts for a finished run (BATCH_COLUMNS order). */
export type BatchValues = [number, number, number, number, number, number, number, string, string, Buffer];

/**
 * Builds batch rows from datagram records in the writer. The writer gives each record it could
 * batch to `add`; a run per session grows until BATCH_ROWS or BATCH_BYTES, then it is finished:
 * it takes its ids from `takeIds` and goes to `insert`. Runs are finished at the end of every
 * writer batch too (`finishAll`), since their payload points into that batch's arena.
 */
export class DatagramBatcher {
  private readonly runs = new Map<number, Run>();
  /** Each live session's last seq in a batch (so far or in a run), kept across writer batches. */
  private readonly lastSeq = new Map<number, number>();
  private records: Float64Array = new Float64Array(0);
  private strings: readonly string[] = [];
  private arena: Buffer | undefined;

  constructor(
    private readonly insert: (values: BatchValues) => void,
    private readonly takeIds: (count: number) => number,
  ) {}

  /** A new writer batch: the records, strings and arena that `add` reads. */
  begin(records: Float64Array, strings: readonly string[], arena: Buffer | undefined): void {
    this.records = records;
    this.strings = strings;
    this.arena = arena;
  }

  /**
   * Adds the datagram record at slot `b` (its payload inline) to its session's run; false when it
   * must be a row instead: its seq is not after the session's last batched one.
   */
  add(b: number): boolean {
    const r = this.records;
    const sid = r[b + R_SID]!;
    const seq = r[b + R_SEQ]!;
    const last = this.lastSeq.get(sid);
    if (last !== undefined && seq <= last) return false;
    const dataLength = r[b + R_DATA_LENGTH]!;
    const sentOffset = r[b + R_SENT_OFFSET]!;
    const sentLength = sentOffset < 0 ? 0 : r[b + R_SENT_LENGTH]!;
    const bytes = dataLength + sentLength;
    let run = this.runs.get(sid);
    if (run !== undefined && (run.count === BATCH_ROWS || run.bytes + bytes > BATCH_BYTES)) {
      this.finish(run);
      run = undefined;
    }
    const at = r[b + R_AT]!;
    if (run === undefined) {
      run = {
        sid,
        minSeq: seq,
        maxSeq: seq,
        at,
        lastAt: at,
        count: 0,
        shapeSlots: [],
        shapeJson: [],
        shapeKeys: undefined,
        lastShape: 0,
        items: new AsciiBuilder(),
        ranges: [],
        bytes: 0,
      };
      this.runs.set(sid, run);
    }
    const shape = this.shapeOf(run, b);
    const items = run.items;
    items.byte(run.count === 0 ? 0x5b : 0x2c); // "[" or ","
    items.byte(0x5b);
    items.number(seq);
    items.byte(0x2c);
    items.number(at - run.at);
    items.byte(0x2c);
    items.number(shape);
    items.byte(0x2c);
    items.number(r[b + R_SIZE]!);
    items.byte(0x2c);
    items.number(run.bytes);
    items.byte(0x2c);
    items.number(dataLength);
    this.take(run, r[b + R_DATA_OFFSET]!, dataLength);
    if (sentOffset >= 0) {
      items.byte(0x2c);
      items.number(run.bytes);
      items.byte(0x2c);
      items.number(sentLength);
      this.take(run, sentOffset, sentLength);
    }
    items.byte(0x5d); // "]"
    run.count++;
    run.maxSeq = seq;
    run.lastAt = at;
    this.lastSeq.set(sid, seq);
    return true;
  }

  /** Finishes the session's run, if any (before a row of the session takes an id, so ids keep the order of recording). */
  finishSession(sid: number): void {
    const run = this.runs.get(sid);
    if (run !== undefined) this.finish(run);
  }

  /** The session ended: its run is finished and its last seq forgotten. */
  ended(sid: number): void {
    this.finishSession(sid);
    this.lastSeq.delete(sid);
  }

  /** Finishes every run (the end of a writer batch). */
  finishAll(): void {
    for (const run of this.runs.values()) this.finish(run);
  }

  /** After a failed writer batch: its runs are dropped (the rollback took the rows already inserted). */
  discard(): void {
    this.runs.clear();
  }

  private finish(run: Run): void {
    this.runs.delete(run.sid);
    const payload = Buffer.allocUnsafe(run.bytes);
    const arena = this.arena;
    let at = 0;
    for (let i = 0; i < run.ranges.length; i += 2) {
      const length = run.ranges[i + 1]!;
      arena!.copy(payload, at, run.ranges[i]!, run.ranges[i]! + length);
      at += length;
    }
    run.items.byte(0x5d);
    const firstId = this.takeIds(run.count);
    this.insert([firstId, run.sid, run.count, run.minSeq, run.maxSeq, run.at, run.lastAt, `[${run.shapeJson.join(",")}]`, run.items.text(), payload]);
  }

  private take(run: Run, offset: number, length: number): void {
    if (length === 0) return;
    const ranges = run.ranges;
    const n = ranges.length;
    if (n > 0 && ranges[n - 2]! + ranges[n - 1]! === offset) ranges[n - 1] = ranges[n - 1]! + length;
    else ranges.push(offset, length);
    run.bytes += length;
  }

  /** The index in the run's shapes of the record's shape, added if new. */
  private shapeOf(run: Run, b: number): number {
    const r = this.records;
    const slots = run.shapeSlots;
    const count = run.shapeJson.length;
    if (count > 0 && this.sameShape(slots, run.lastShape, b)) return run.lastShape;
    let found = -1;
    let key: string | undefined;
    if (run.shapeKeys === undefined) {
      for (let s = 0; s < count; s++) {
        if (this.sameShape(slots, s, b)) {
          found = s;
          break;
        }
      }
    } else {
      key = SLOTS.map((slot) => slotValue(r[b + slot]!)).join(",");
      found = run.shapeKeys.get(key) ?? -1;
    }
    if (found < 0) {
      found = count;
      for (let s = 0; s < SHAPE_WIDTH; s++) slots.push(slotValue(r[b + SLOTS[s]!]!));
      run.shapeJson.push(JSON.stringify(this.values(b)));
      if (key !== undefined) run.shapeKeys!.set(key, found);
      else if (count + 1 > SCAN_SHAPES) {
        // A shape's key is its slot values joined, as above.
        run.shapeKeys = new Map();
        for (let s = 0; s <= found; s++) run.shapeKeys.set(slots.slice(s * SHAPE_WIDTH, (s + 1) * SHAPE_WIDTH).join(","), s);
      }
    }
    run.lastShape = found;
    return found;
  }

  private sameShape(slots: readonly number[], shape: number, b: number): boolean {
    const r = this.records;
    const at = shape * SHAPE_WIDTH;
    for (let s = 0; s < SHAPE_WIDTH; s++) if (slots[at + s] !== slotValue(r[b + SLOTS[s]!]!)) return false;
    return true;
  }

  /** The shape's column values (a `shapes` entry). */
  private values(b: number): (string | number | null)[] {
    const r = this.records;
    return SLOTS.map((slot, s) => {
      const v = r[b + slot]!;
      if (s === 0) return v === 0 ? "up" : "down";
      if (STRING_SLOT[s]) return v < 0 ? null : this.strings[v]!;
      return Number.isNaN(v) ? null : v;
    });
  }
}

/** A slot's value for comparison: NaN (a null port) as -1, so that equal shapes compare equal. */
function slotValue(v: number): number {
  return Number.isNaN(v) ? -1 : v;
}

/** JSON text built as bytes: numbers are written digit by digit, without a string per number. */
class AsciiBuilder {
  private buffer = Buffer.allocUnsafe(512);
  private length = 0;

  byte(c: number): void {
    if (this.length === this.buffer.length) this.grow(1);
    this.buffer[this.length++] = c;
  }

  /** A finite number as JSON writes it (integers digit by digit, anything else through String()). */
  number(v: number): void {
    if (!Number.isSafeInteger(v)) {
      const text = String(v);
      if (this.length + text.length > this.buffer.length) this.grow(text.length);
      this.length += this.buffer.write(text, this.length, "latin1");
      return;
    }
    if (this.length + 17 > this.buffer.length) this.grow(17);
    const buffer = this.buffer;
    if (v < 0) {
      buffer[this.length++] = 0x2d;
      v = -v;
    }
    let digits = 1;
    for (let t = v; t >= 10; t = Math.floor(t / 10)) digits++;
    let p = this.length + digits;
    this.length = p;
    do {
      const q = Math.floor(v / 10);
      buffer[--p] = 0x30 + (v - q * 10);
      v = q;
    } while (v > 0);
  }

  text(): string {
    return this.buffer.toString("latin1", 0, this.length);
  }

  private grow(need: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + need));
    this.buffer.copy(next, 0, 0, this.length);
    this.buffer = next;
  }
}

// --- reading ------------------------------------------------------------------------------------

/** A `datagram_batches` row as read (payload only when asked for). */
export interface StoredBatch {
  readonly first_id: number;
  readonly session_id: number;
  readonly count: number;
  readonly at: number;
  readonly shapes: string;
  readonly items: string;
  readonly payload?: Buffer;
}

type Shape = readonly [
  direction: "up" | "down",
  peerType: string | null,
  peerHost: string | null,
  peerPort: number | null,
  fromHost: string,
  fromPort: number,
  toHost: string | null,
  toPort: number | null,
  verdict: DatagramRow["verdict"],
  reason: string | null,
  detail: string | null,
];

/** A batch row read back and checked: what it says of each of its datagrams. */
export class DecodedBatch {
  private constructor(
    readonly firstId: number,
    readonly sessionId: number,
    private readonly at: number,
    private readonly shapes: readonly Shape[],
    /** Per datagram: seq, at offset, shape, size, data offset, data length[, sent offset, sent length]. */
    private readonly items: readonly (readonly number[])[],
    readonly payload: Buffer | undefined,
  ) {}

  /** Parses and checks a stored row (a capture file is input: a damaged one is an error, not a crash). */
  static of(row: StoredBatch, file: string): DecodedBatch {
    const fail = (why: string): never => {
      throw new CaptureError(`${file}: datagram batch ${row.first_id} is damaged: ${why}`);
    };
    let shapes: unknown;
    let items: unknown;
    try {
      shapes = JSON.parse(row.shapes);
      items = JSON.parse(row.items);
    } catch (err) {
      return fail((err as Error).message);
    }
    if (!Array.isArray(shapes) || !shapes.every(isShape)) return fail("a shape is not what schema 6 writes");
    if (!Array.isArray(items) || items.length !== row.count) return fail(`it lists ${Array.isArray(items) ? items.length : "no"} datagrams, not ${row.count}`);
    const payloadBytes = row.payload?.length;
    for (const item of items as unknown[]) {
      if (!Array.isArray(item) || (item.length !== 6 && item.length !== 8) || !item.every((v) => typeof v === "number" && Number.isFinite(v))) {
        return fail(`a datagram's entry is ${JSON.stringify(item)}`);
      }
      const shape = item[2] as number;
      if (!Number.isInteger(shape) || shape < 0 || shape >= shapes.length) return fail(`shape ${shape} of ${shapes.length}`);
      for (let k = 4; k < item.length; k += 2) {
        const offset = item[k] as number;
        const length = item[k + 1] as number;
        if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0) return fail(`payload range ${offset}+${length}`);
        if (payloadBytes !== undefined && offset + length > payloadBytes) return fail(`payload range ${offset}+${length} past its ${payloadBytes} bytes`);
      }
    }
    return new DecodedBatch(row.first_id, row.session_id, row.at, shapes as Shape[], items as number[][], row.payload);
  }

  get count(): number {
    return this.items.length;
  }

  seq(i: number): number {
    return this.items[i]![0]!;
  }

  /** Datagram `i` without its payload (the reader's DatagramMeta). */
  meta(i: number): DatagramMeta {
    const item = this.items[i]!;
    const [direction, peerType, peerHost, peerPort, fromHost, fromPort, toHost, toPort, verdict, reason, detail] = this.shapes[item[2]!]!;
    return {
      id: this.firstId + i,
      session_id: this.sessionId,
      seq: item[0]!,
      at: this.at + item[1]!,
      direction,
      peer_type: peerType,
      peer_host: peerHost,
      peer_port: peerPort,
      from_host: fromHost,
      from_port: fromPort,
      to_host: toHost,
      to_port: toPort,
      size: item[3]!,
      verdict,
      reason,
      detail,
      dataBytes: item[5]!,
      sentBytes: item.length > 6 ? item[7]! : null,
    };
  }

  /** Datagram `i`'s bytes (the batch was read with its payload), each side cut to `cap`. */
  bytes(i: number, cap?: number): { data: Buffer; sent: Buffer | null } {
    const item = this.items[i]!;
    const payload = this.payload!;
    const cut = (offset: number, length: number): Buffer => payload.subarray(offset, offset + (cap === undefined ? length : Math.min(length, cap)));
    return { data: cut(item[4]!, item[5]!), sent: item.length > 6 ? cut(item[6]!, item[7]!) : null };
  }

  /** Datagram `i` whole. */
  row(i: number): DatagramRow {
    const { dataBytes: _d, sentBytes: _s, ...meta } = this.meta(i);
    return { ...meta, ...this.bytes(i) };
  }
}

/** The payloads of a batch row's datagrams, each as received and (when a hook changed it) as sent: the filter's `~` over a batch. */
export function* batchPayloads(firstId: number, count: number, shapes: string, items: string, payload: Buffer): Generator<Buffer | null> {
  const batch = DecodedBatch.of({ first_id: firstId, session_id: 0, count, at: 0, shapes, items, payload }, "capture");
  for (let i = 0; i < batch.count; i++) {
    const { data, sent } = batch.bytes(i);
    yield data;
    if (sent !== null) yield sent;
  }
}

function isShape(value: unknown): value is Shape {
  if (!Array.isArray(value) || value.length !== SHAPE_WIDTH) return false;
  const [direction, peerType, peerHost, peerPort, fromHost, fromPort, toHost, toPort, verdict, reason, detail] = value as unknown[];
  const text = (v: unknown) => v === null || typeof v === "string";
  const port = (v: unknown) => v === null || (typeof v === "number" && Number.isInteger(v));
  return (
    (direction === "up" || direction === "down") &&
    text(peerType) &&
    text(peerHost) &&
    port(peerPort) &&
    typeof fromHost === "string" &&
    typeof fromPort === "number" &&
    text(toHost) &&
    port(toPort) &&
    typeof verdict === "string" &&
    text(reason) &&
    text(detail)
  );
}
