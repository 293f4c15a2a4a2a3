/**
 * The capture's way to the writer thread: batches of operations with their payload, and the
 * budget that keeps what is held bounded. It knows operations and bytes, not engine facts (the
 * recorder maps those, recorder.ts).
 *
 * - The main thread only copies payload into the current batch's arena (`copy`) and appends
 *   small operation records (`push`; chunks and datagrams as rows of numbers, `chunk` and
 *   `datagram`, see batch.ts); a worker thread (writer-worker.ts) does all SQLite work,
 *   one transaction per batch. A batch is sent at least every `flushIntervalMs` (100 ms), sooner
 *   when its arena or its operation list fills up (checked by `commit`).
 * - What is held (`held`): payload sent to the writer but not yet written, plus what is being
 *   batched, plus an estimate of OP_BYTES per queued operation. Over `highWaterBytes`,
 *   `commitOrWait()` returns a promise that settles once the writer has caught up to half of it
 *   (the caller stops reading until then); `hasRoom()` tells a caller that cannot wait (UDP)
 *   whether one more record fits.
 * - A write failure (disk full, I/O error, the worker died) stops the transport for good: what
 *   is pending is dropped, a waiting caller is released, and `failed` is called once; from then
 *   on `capturing` is false and nothing is sent.
 */
import { existsSync } from "node:fs";
import { Worker } from "node:worker_threads";
import {
  AUTH_SLOTS,
  type Batch,
  CLOSE_FIRST_COUNT,
  CLOSE_SLOTS,
  COUNT_SLOTS,
  KIND_AUTH,
  KIND_CHUNK,
  KIND_CLOSE,
  KIND_DATAGRAM,
  KIND_OPEN,
  KIND_PROGRESS,
  KIND_REPLY,
  KIND_REQUEST,
  OPEN_SLOTS,
  PROGRESS_FIRST_COUNT,
  REPLY_SLOTS,
  REQUEST_SLOTS,
  type Operation,
  R_AT,
  R_DATA_LENGTH,
  R_DATA_OFFSET,
  R_DETAIL,
  R_DIRECTION,
  R_FROM_HOST,
  R_FROM_PORT,
  R_KIND,
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
  RECORD_SLOTS,
  type RecordBuffer,
  type Slice,
  type WriterReply,
  type WriterRequest,
} from "./batch.js";
import { type CaptureError, describe } from "./database.js";

export interface TransportOptions {
  /** The longest an operation waits before it is on its way to the writer (default 100 ms). */
  readonly flushIntervalMs?: number;
  /** Bytes held beyond which `commitOrWait` asks the caller to wait (default 64 MiB). */
  readonly highWaterBytes?: number;
  /** Tests: bound the file's size in pages to provoke "disk full". */
  readonly maxPageCount?: number;
  readonly now: () => number;
  /** Called at the start of every flush, before the batch is sent (the recorder adds its progress records). */
  readonly beforeFlush: () => void;
  /** Called once when the transport stops because of a write error. */
  readonly failed: (error: CaptureError) => void;
}

const ARENA_BYTES = 4 * 1024 * 1024;
/** Arenas kept for reuse; more in flight than this are allocated and left to the GC. */
const SPARE_ARENAS = 8;
const MAX_OPS = 4096;
/** A record buffer holds a full batch of records. */
const RECORD_BYTES = MAX_OPS * RECORD_SLOTS * Float64Array.BYTES_PER_ELEMENT;
/** Record string slots whose last string `repeated` remembers: a datagram's six and the verdict. */
const REPEATED_SLOTS = 7;
/** What one queued operation is counted as against `highWaterBytes` (its object, roughly). */
export const OP_BYTES = 256;

export class CaptureTransport {
  private readonly worker: Worker;
  private ops: Operation[] = [];
  /** Operations (`records` ones included) and records queued: what `held` counts OP_BYTES for, and the writer's ack gives back. */
  private items = 0;
  private arena: Buffer | undefined;
  /** Arenas the writer sent back, ready to be filled again. */
  private readonly spare: Buffer[] = [];
  private used = 0;
  /** The current batch's records (batch.ts), how many, and their strings. */
  private records: Float64Array | undefined;
  private recordCount = 0;
  private strings: string[] = [];
  private readonly stringIndex = new Map<string, number>();
  /** Per record string slot (see `repeated`), its last string (undefined: none in this batch) and that string's index. */
  private readonly lastText = new Array<string | null | undefined>(REPEATED_SLOTS).fill(undefined);
  private readonly lastIndex = new Array<number>(REPEATED_SLOTS).fill(-1);
  /** The `records` operation the next record extends, while nothing else was pushed after it. */
  private run: { readonly op: "records"; readonly from: number; count: number } | undefined;
  /** Record buffers the writer sent back. */
  private readonly spareRecords: ArrayBuffer[] = [];
  private batchSeq = 0;
  private inflight = 0;
  private waiting: { promise: Promise<void>; resolve: () => void } | undefined;
  private readonly timer: NodeJS.Timeout;
  private stopped = false;
  private failure: CaptureError | undefined;
  private readonly highWater: number;
  private stoppedWorker: Promise<void> | undefined;
  private beforeFlushing = false;

  /** Starts the writer on `file` for run `runId` (begun by the caller). */
  constructor(
    private readonly file: string,
    runId: number,
    private readonly options: TransportOptions,
  ) {
    this.highWater = options.highWaterBytes ?? 64 * 1024 * 1024;
    this.worker = new Worker(workerFile());
    this.worker.on("message", this.onReply);
    this.worker.on("error", (err) => this.fail(err));
    this.worker.unref();
    this.post({ type: "start", file, runId, ...(options.maxPageCount === undefined ? {} : { maxPageCount: options.maxPageCount }) });
    this.timer = setInterval(() => this.flush(), options.flushIntervalMs ?? 100);
    this.timer.unref();
  }

  /** What is held now against `highWaterBytes` (see the file's comment). Tests check its bound. */
  get held(): number {
    return this.inflight + this.used + this.items * OP_BYTES;
  }

  /** The most `held` has been since the transport started. */
  maxHeld = 0;

  /** Whether operations are still taken: false once closed or after a write error. */
  get capturing(): boolean {
    return this.failure === undefined && !this.stopped;
  }

  /** Queues one operation for the current batch. */
  push(op: Operation): void {
    this.ops.push(op);
    this.items++;
    this.run = undefined;
  }

  /** Copies the first `length` bytes into the current batch's arena; the slice is valid for this batch's operations. */
  copy(bytes: Uint8Array, length: number): Slice {
    if (length === 0) return { offset: 0, length: 0 };
    this.reserve(length);
    return { offset: this.put(bytes, length), length };
  }

  /**
   * Queues a chunk's record: `data` as received (its first `dataLength` bytes kept), `sent` when
   * a hook changed it (its first `sentLength` bytes kept). Both go into the same batch's arena.
   */
  chunk(
    sid: number,
    seq: number,
    at: number,
    down: boolean,
    data: Uint8Array,
    dataLength: number,
    sent: Uint8Array | undefined,
    sentLength: number,
    verdict: string | null,
  ): void {
    this.record(KIND_CHUNK, sid, seq, at, down, data, dataLength, sent, sentLength, verdict);
  }

  /** Queues a datagram's record (as `chunk`, with the datagram's addresses and drop reason). */
  datagram(
    sid: number,
    seq: number,
    at: number,
    down: boolean,
    data: Uint8Array,
    dataLength: number,
    sent: Uint8Array | undefined,
    sentLength: number,
    verdict: string,
    peerType: string | null,
    peerHost: string | null,
    peerPort: number | null,
    fromHost: string,
    fromPort: number,
    toHost: string | null,
    toPort: number | null,
    reason: string | null,
    detail: string | null,
  ): void {
    const b = this.record(KIND_DATAGRAM, sid, seq, at, down, data, dataLength, sent, sentLength, verdict);
    const records = this.records!;
    records[b + R_PEER_TYPE] = this.repeated(0, peerType);
    records[b + R_PEER_HOST] = this.repeated(1, peerHost);
    records[b + R_PEER_PORT] = peerPort ?? Number.NaN;
    records[b + R_FROM_HOST] = this.repeated(2, fromHost);
    records[b + R_FROM_PORT] = fromPort;
    records[b + R_TO_HOST] = this.repeated(3, toHost);
    records[b + R_TO_PORT] = toPort ?? Number.NaN;
    records[b + R_REASON] = this.repeated(4, reason);
    records[b + R_DETAIL] = this.repeated(5, detail);
  }

  /** Queues a session's `open` operation as a record (the fields of batch.ts's `open`). */
  sessionOpen(sid: number, engineId: number, at: number, clientHost: string, clientPort: number, localHost: string, localPort: number): void {
    const b = this.begin(KIND_OPEN, sid);
    const r = this.records!;
    r[b + OPEN_SLOTS.engineId] = engineId;
    r[b + OPEN_SLOTS.at] = at;
    r[b + OPEN_SLOTS.clientHost] = this.string(clientHost);
    r[b + OPEN_SLOTS.clientPort] = clientPort;
    r[b + OPEN_SLOTS.localHost] = this.string(localHost);
    r[b + OPEN_SLOTS.localPort] = localPort;
  }

  /** Queues an `auth` operation as a record; `offered` is the JSON text of the methods offered. */
  sessionAuth(sid: number, version: string, method: string | null, offered: string, user: string | null): void {
    const b = this.begin(KIND_AUTH, sid);
    const r = this.records!;
    r[b + AUTH_SLOTS.version] = this.string(version);
    r[b + AUTH_SLOTS.method] = this.string(method);
    r[b + AUTH_SLOTS.offered] = this.string(offered);
    r[b + AUTH_SLOTS.user] = this.string(user);
  }

  /** Queues a `request` operation as a record. */
  sessionRequest(sid: number, at: number, version: string, command: string, type: string, host: string, port: number, user: string | null): void {
    const b = this.begin(KIND_REQUEST, sid);
    const r = this.records!;
    r[b + REQUEST_SLOTS.at] = at;
    r[b + REQUEST_SLOTS.version] = this.string(version);
    r[b + REQUEST_SLOTS.command] = this.string(command);
    r[b + REQUEST_SLOTS.type] = this.string(type);
    r[b + REQUEST_SLOTS.host] = this.string(host);
    r[b + REQUEST_SLOTS.port] = port;
    r[b + REQUEST_SLOTS.user] = this.string(user);
  }

  /** Queues a `reply` operation as a record. */
  sessionReply(
    sid: number,
    at: number,
    rep: number,
    code: string | null,
    errno: string | null,
    boundHost: string,
    boundPort: number,
    targetHost: string | null,
    targetPort: number | null,
    remoteHost: string | null,
    remotePort: number | null,
    attempts: string | null,
    route: string | null,
  ): void {
    const b = this.begin(KIND_REPLY, sid);
    const r = this.records!;
    r[b + REPLY_SLOTS.at] = at;
    r[b + REPLY_SLOTS.rep] = rep;
    r[b + REPLY_SLOTS.code] = this.string(code);
    r[b + REPLY_SLOTS.errno] = this.string(errno);
    r[b + REPLY_SLOTS.boundHost] = this.string(boundHost);
    r[b + REPLY_SLOTS.boundPort] = boundPort;
    r[b + REPLY_SLOTS.targetHost] = this.string(targetHost);
    r[b + REPLY_SLOTS.targetPort] = targetPort ?? Number.NaN;
    r[b + REPLY_SLOTS.remoteHost] = this.string(remoteHost);
    r[b + REPLY_SLOTS.remotePort] = remotePort ?? Number.NaN;
    r[b + REPLY_SLOTS.attempts] = this.string(attempts);
    r[b + REPLY_SLOTS.route] = this.string(route);
  }

  /** Queues a `progress` operation (a session's running counts) as a record. */
  sessionProgress(
    sid: number,
    upReceived: number,
    upSent: number,
    downReceived: number,
    downSent: number,
    captured: number,
    truncated: boolean,
    uncaptured: number,
  ): void {
    const b = this.begin(KIND_PROGRESS, sid);
    this.counts(b + PROGRESS_FIRST_COUNT, upReceived, upSent, downReceived, downSent, captured, truncated, uncaptured);
  }

  /** Queues a session's `close` operation (its end and final counts) as a record. */
  sessionClose(
    sid: number,
    at: number,
    status: string,
    reason: string,
    errno: string | null,
    upReceived: number,
    upSent: number,
    downReceived: number,
    downSent: number,
    captured: number,
    truncated: boolean,
    uncaptured: number,
  ): void {
    const b = this.begin(KIND_CLOSE, sid);
    const r = this.records!;
    r[b + CLOSE_SLOTS.at] = at;
    r[b + CLOSE_SLOTS.status] = this.string(status);
    r[b + CLOSE_SLOTS.reason] = this.string(reason);
    r[b + CLOSE_SLOTS.errno] = this.string(errno);
    this.counts(b + CLOSE_FIRST_COUNT, upReceived, upSent, downReceived, downSent, captured, truncated, uncaptured);
  }

  private counts(
    at: number,
    upReceived: number,
    upSent: number,
    downReceived: number,
    downSent: number,
    captured: number,
    truncated: boolean,
    uncaptured: number,
  ): void {
    const r = this.records!;
    r[at + COUNT_SLOTS.upReceived] = upReceived;
    r[at + COUNT_SLOTS.upSent] = upSent;
    r[at + COUNT_SLOTS.downReceived] = downReceived;
    r[at + COUNT_SLOTS.downSent] = downSent;
    r[at + COUNT_SLOTS.captured] = captured;
    r[at + COUNT_SLOTS.truncated] = truncated ? 1 : 0;
    r[at + COUNT_SLOTS.uncaptured] = uncaptured;
  }

  /** Starts a record of `kind` for session `sid` (sending the batch first when its records are full); returns where its slots start. */
  private begin(kind: number, sid: number): number {
    if (this.recordCount === MAX_OPS) this.flush();
    const records = (this.records ??= new Float64Array(this.spareRecords.pop() ?? new ArrayBuffer(RECORD_BYTES)));
    const index = this.recordCount++;
    this.items++;
    if (this.run !== undefined) this.run.count++;
    else {
      this.run = { op: "records", from: index, count: 1 };
      this.ops.push(this.run);
      this.items++;
    }
    const b = index * RECORD_SLOTS;
    records[b + R_KIND] = kind;
    records[b + R_SID] = sid;
    return b;
  }

  /** Writes a chunk's or datagram's common slots (and copies its payload); returns where its slots start. */
  private record(
    kind: number,
    sid: number,
    seq: number,
    at: number,
    down: boolean,
    data: Uint8Array,
    dataLength: number,
    sent: Uint8Array | undefined,
    sentLength: number,
    verdict: string | null,
  ): number {
    if (this.recordCount === MAX_OPS) this.flush();
    // Room for both sides first: a flush between them would send one without the other.
    const total = dataLength + (sent === undefined ? 0 : sentLength);
    if (total > 0) this.reserve(total);
    const b = this.begin(kind, sid);
    const records = this.records!;
    records[b + R_SEQ] = seq;
    records[b + R_AT] = at;
    records[b + R_DIRECTION] = down ? 1 : 0;
    records[b + R_DATA_OFFSET] = dataLength === 0 ? 0 : this.put(data, dataLength);
    records[b + R_DATA_LENGTH] = dataLength;
    records[b + R_SIZE] = data.length;
    records[b + R_SENT_OFFSET] = sent === undefined ? -1 : sentLength === 0 ? 0 : this.put(sent, sentLength);
    records[b + R_SENT_LENGTH] = sentLength;
    records[b + R_VERDICT] = this.repeated(6, verdict);
    return b;
  }

  /**
   * `string(s)` for a record's string slot `slot`, asking the batch's map only when `s` differs
   * from the slot's last string: an association's datagrams repeat their hosts, type and verdict
   * (new string objects each time, so the map would hash each one).
   */
  private repeated(slot: number, s: string | null): number {
    if (s === this.lastText[slot]) return this.lastIndex[slot]!;
    const i = this.string(s);
    this.lastText[slot] = s;
    this.lastIndex[slot] = i;
    return i;
  }

  /** The batch's index of `s` (-1 for null). */
  private string(s: string | null): number {
    if (s === null) return -1;
    let i = this.stringIndex.get(s);
    if (i === undefined) {
      i = this.strings.length;
      this.strings.push(s);
      this.stringIndex.set(s, i);
    }
    return i;
  }

  /** Makes room for `length` more bytes in the arena (sending the batch first when it is full). */
  private reserve(length: number): void {
    if (this.arena !== undefined && this.used + length <= this.arena.length) return;
    if (this.used > 0) this.flush();
    this.arena = (length <= ARENA_BYTES ? this.spare.pop() : undefined) ?? Buffer.allocUnsafeSlow(Math.max(ARENA_BYTES, length));
    this.used = 0;
  }

  /** Copies the first `length` bytes into the arena, which has room; returns their offset. */
  private put(bytes: Uint8Array, length: number): number {
    const offset = this.used;
    this.arena!.set(length === bytes.length ? bytes : bytes.subarray(0, length), offset);
    this.used += length;
    return offset;
  }

  /** Whether one more record of `bytes` payload stays within `highWaterBytes`. */
  hasRoom(bytes: number): boolean {
    return this.held + bytes + OP_BYTES <= this.highWater;
  }

  /** After a record was queued: sends the batch when it is full. */
  commit(): void {
    this.maxHeld = Math.max(this.maxHeld, this.held);
    if (this.used >= ARENA_BYTES || this.items >= MAX_OPS) this.flush();
  }

  /** `commit`, then a promise while too much is held (the engine pauses the direction until it settles). */
  commitOrWait(): Promise<void> | undefined {
    this.commit();
    if (this.held <= this.highWater) return undefined;
    this.flush();
    if (this.waiting === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.waiting = { promise, resolve };
    }
    return this.waiting.promise;
  }

  /** Sends the current batch to the writer. */
  flush(): void {
    if (this.failure !== undefined) return;
    if (!this.beforeFlushing) {
      // What beforeFlush queues may fill the batch; the flush that causes sends the batch as it is.
      this.beforeFlushing = true;
      try {
        this.options.beforeFlush();
      } finally {
        this.beforeFlushing = false;
      }
    }
    if (this.ops.length === 0) return;
    const arena = this.arena === undefined || this.used === 0 ? undefined : (this.arena.buffer as ArrayBuffer);
    const records: RecordBuffer | undefined =
      this.recordCount === 0 ? undefined : { buffer: this.records!.buffer as ArrayBuffer, count: this.recordCount, strings: this.strings };
    const batch: Batch = {
      seq: ++this.batchSeq,
      ops: this.ops,
      bytes: this.used,
      ...(arena === undefined ? {} : { arena }),
      ...(records === undefined ? {} : { records }),
    };
    this.inflight += this.used + this.items * OP_BYTES;
    const transfer: ArrayBuffer[] = [];
    if (arena !== undefined) transfer.push(arena);
    if (records !== undefined) transfer.push(records.buffer);
    this.post({ type: "batch", batch }, transfer);
    if (arena !== undefined) this.arena = undefined;
    if (records !== undefined) this.records = undefined;
    this.clearBatch();
  }

  /** Forgets the current batch (sent, or dropped after a failure); a buffer not sent is kept for the next one. */
  private clearBatch(): void {
    this.ops = [];
    this.items = 0;
    this.used = 0;
    this.recordCount = 0;
    this.run = undefined;
    if (this.strings.length > 0) {
      this.strings = [];
      this.stringIndex.clear();
      this.lastText.fill(undefined);
    }
  }

  /** Sends what is pending, has the writer mark the run ended and close the file; resolves once it has. */
  close(): Promise<void> {
    if (this.stoppedWorker !== undefined) return this.stoppedWorker;
    clearInterval(this.timer);
    this.flush();
    this.stopped = true;
    // An unref'd worker would let the process exit before the file is closed.
    this.worker.ref();
    this.stoppedWorker = new Promise<void>((resolve) => {
      const done = (): void => resolve();
      this.worker.once("exit", done);
      this.post({ type: "stop", at: this.options.now() });
    });
    this.release();
    return this.stoppedWorker;
  }

  private release(): void {
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve();
  }

  private post(request: WriterRequest, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(request, transfer);
  }

  private readonly onReply = (reply: WriterReply): void => {
    switch (reply.type) {
      case "ack":
        this.inflight -= reply.bytes + reply.ops * OP_BYTES;
        if (reply.arena !== undefined && reply.arena.byteLength === ARENA_BYTES && this.spare.length < SPARE_ARENAS) this.spare.push(Buffer.from(reply.arena));
        if (reply.records !== undefined && this.spareRecords.length < SPARE_ARENAS) this.spareRecords.push(reply.records);
        if (this.inflight <= this.highWater / 2) this.release();
        return;
      case "failed":
        this.fail(Object.assign(new Error(reply.message), reply.code === undefined ? {} : { code: reply.code }));
        return;
      case "stopped":
        return;
    }
  };

  private fail(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = describe(this.file, err);
    this.arena = undefined;
    this.clearBatch();
    this.release();
    this.options.failed(this.failure);
  }
}

/** dist/capture-worker.js: next to the CLI bundle, or built from the sources (tests). */
function workerFile(): URL {
  const beside = new URL("./capture-worker.js", import.meta.url);
  if (existsSync(beside)) return beside;
  return new URL("../../dist/capture-worker.js", import.meta.url);
}
