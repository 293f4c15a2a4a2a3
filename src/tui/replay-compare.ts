/**
 * A replay's answer against its original, for the overview, compared in bounded steps (the TUI
 * shares the relay's thread, and the sessions may be gigabytes): each `step` reads at most one
 * metadata page per session and payload for at most STEP_BYTES of stored bytes, and keeps only
 * what is not compared yet. Once a difference is found the rest is counted from metadata alone.
 *
 * What is compared is what `replay` compares (src/replay/turns.ts): TCP, the bytes the server
 * side sent (`data` of "down" chunks, `sent` of injected ones), as one stream; UDP, the answers
 * (down datagrams not dropped, as sent), one by one.
 */
import { firstDifference } from "../replay/turns.js";
import { STEP_BYTES } from "./detail-window.js";
import type { ChunkMeta, DatagramMeta, RowKey, SessionSource } from "./types.js";
import type { ReplayComparison } from "./views/index.js";

const META_PAGE = 512;
/** Bytes each side keeps ready to compare before reading more. */
const READY_BYTES = 1 << 20;
/** Bytes shown around a difference (as firstDifference does). */
const CONTEXT = 8;

type Meta = ChunkMeta | DatagramMeta;

/** One session's answer, read in pages: a byte stream (TCP) or a list of answers (UDP). */
class Side {
  readonly queue: Buffer[] = [];
  queued = 0;
  /** Bytes (TCP) or answers (UDP) read so far, counted also once payload is no longer needed. */
  total = 0;
  answers = 0;
  ended = false;
  private after: RowKey | undefined;

  constructor(
    private readonly source: SessionSource,
    private readonly id: number,
    private readonly udp: boolean,
  ) {}

  /** Reads one page: payload when `payload`, else only sizes. */
  pull(payload: boolean): void {
    if (this.ended) return;
    const query = { ...(this.after === undefined ? {} : { after: this.after }), limit: META_PAGE };
    const meta: Meta[] = this.udp ? this.source.datagramMeta(this.id, query) : this.source.chunkMeta(this.id, query);
    let budget = STEP_BYTES;
    let taken = 0;
    const wanted: Meta[] = [];
    for (const m of meta) {
      const size = this.sizeOf(m);
      if (payload && size !== undefined && size > budget && wanted.length > 0) break;
      taken++;
      if (size === undefined) continue;
      this.total += size;
      this.answers++;
      if (payload) {
        budget -= Math.min(budget, size);
        wanted.push(m);
      }
    }
    if (wanted.length > 0) {
      const rows = this.udp ? this.source.datagramPayload(wanted.map((m) => m.id)) : this.source.chunkPayload(wanted.map((m) => m.id));
      for (const m of wanted) {
        const p = rows.get(m.id);
        const bytes = (this.usesSent(m) ? p?.sent : p?.data) ?? Buffer.alloc(0);
        // A TCP stream needs no empty pieces; a UDP answer may be empty.
        if (!this.udp && bytes.length === 0) continue;
        this.queue.push(bytes);
        this.queued += bytes.length;
      }
    }
    const last = meta[taken - 1];
    if (last !== undefined) this.after = { seq: last.seq, id: last.id };
    if (taken === meta.length && meta.length < META_PAGE) this.ended = true;
  }

  /** Bytes this row adds to the answer, undefined when it is not part of it. */
  private sizeOf(m: Meta): number | undefined {
    if (m.direction !== "down") return undefined;
    if (this.udp) return (m as DatagramMeta).verdict === "dropped" ? undefined : (m.sentBytes ?? m.dataBytes);
    const size = this.usesSent(m) ? (m.sentBytes ?? 0) : m.dataBytes;
    return size === 0 ? undefined : size;
  }

  private usesSent(m: Meta): boolean {
    return this.udp ? m.sentBytes !== null : m.verdict === "inject";
  }

  /** Takes `n` bytes from the front of the stream (TCP). */
  take(n: number): Buffer {
    const joined = this.queue.length === 1 ? this.queue[0]! : Buffer.concat(this.queue);
    const taken = joined.subarray(0, n);
    const rest = joined.subarray(n);
    this.queue.length = 0;
    if (rest.length > 0) this.queue.push(rest);
    this.queued = rest.length;
    return taken;
  }
}

export class ReplayComparer {
  private readonly expected: Side;
  private readonly received: Side;
  /** Bytes (TCP) or answers (UDP) found equal. */
  private same = 0;
  /** The last bytes found equal (TCP), for the context before a difference. */
  private tail = Buffer.alloc(0);
  private difference: ReplayComparison["difference"];
  private answer: number | undefined;
  private found = false;

  constructor(
    source: SessionSource,
    original: number,
    replay: number,
    private readonly udp: boolean,
  ) {
    this.expected = new Side(source, original, udp);
    this.received = new Side(source, replay, udp);
  }

  /** One bounded step; returns true once the comparison is complete. */
  step(): boolean {
    const want = !this.found;
    for (const side of [this.expected, this.received])
      if (!side.ended && (!want || side.queued < READY_BYTES || (this.udp && side.queue.length === 0))) side.pull(want);
    if (!this.found) {
      if (this.udp) this.compareAnswers();
      else this.compareBytes();
    }
    return this.complete();
  }

  private complete(): boolean {
    return this.expected.ended && this.received.ended && (this.found || (this.expected.queue.length === 0 && this.received.queue.length === 0));
  }

  private compareBytes(): void {
    const e = this.expected;
    const r = this.received;
    const n = Math.min(e.queued, r.queued);
    if (n > 0) {
      const a = e.take(n);
      const b = r.take(n);
      let i = 0;
      while (i < n && a[i] === b[i]) i++;
      if (i < n) {
        // Enough after it for the context: what is left of these pieces and what is queued next.
        this.foundAt(Buffer.concat([this.tail, a, e.take(CONTEXT)]), Buffer.concat([this.tail, b, r.take(CONTEXT)]));
        return;
      }
      this.same += n;
      this.tail = Buffer.from(Buffer.concat([this.tail, a]).subarray(-CONTEXT));
    }
    // One side ended and the other goes on: they differ where the shorter ends.
    if ((e.ended && e.queued === 0 && r.queued > 0) || (r.ended && r.queued === 0 && e.queued > 0)) {
      this.foundAt(Buffer.concat([this.tail, e.take(CONTEXT)]), Buffer.concat([this.tail, r.take(CONTEXT)]));
    }
  }

  private foundAt(expected: Buffer, actual: Buffer): void {
    const d = firstDifference(expected, actual, CONTEXT);
    this.found = true;
    if (d !== undefined) this.difference = { ...d, offset: this.same - this.tail.length + d.offset };
    this.expected.queue.length = 0;
    this.received.queue.length = 0;
    this.expected.queued = this.received.queued = 0;
  }

  private compareAnswers(): void {
    const e = this.expected.queue;
    const r = this.received.queue;
    while (e.length > 0 && r.length > 0) {
      const a = e.shift()!;
      const b = r.shift()!;
      if (Buffer.compare(a, b) !== 0) return this.answerDiffers(a, b);
      this.same++;
    }
    // A missing or an extra answer.
    if (this.expected.ended && e.length === 0 && r.length > 0) this.answerDiffers(Buffer.alloc(0), r.shift()!);
    else if (this.received.ended && r.length === 0 && e.length > 0) this.answerDiffers(e.shift()!, Buffer.alloc(0));
  }

  private answerDiffers(a: Buffer, b: Buffer): void {
    this.found = true;
    this.answer = this.same;
    this.difference = firstDifference(a, b);
    this.expected.queue.length = this.received.queue.length = 0;
  }

  /** The comparison so far (`pending` until complete). */
  result(): ReplayComparison {
    const pending = !this.complete();
    const base = {
      expected: this.expected.total,
      received: this.received.total,
      ...(pending ? { pending } : {}),
      ...(this.difference === undefined ? {} : { difference: this.difference }),
    };
    if (!this.udp) return base;
    return {
      ...base,
      datagrams: { expected: this.expected.answers, received: this.received.answers, ...(this.answer === undefined ? {} : { answer: this.answer }) },
    };
  }
}
