/**
 * `ctx.messages`: message-level rewriting for `onData`, exact whatever the read boundaries.
 * Pure (no sockets); one MessageBuffer per session, addon and direction, made on first use.
 *
 * - Framing cuts a direction into messages: by a delimiter (included in the message), a fixed
 *   length, or a `measure` function of the buffered bytes. A framing given as a function is asked
 *   before each message, so it may follow what earlier edits saw (a chunked body after a header).
 * - Each complete message goes to `edit`; its answer replaces the message, and may let `pass`
 *   bytes after it go on untouched, never buffered (an HTTP body of Content-Length bytes).
 * - The answer for a chunk is `{ replace }` with what is complete so far (empty while a message is
 *   incomplete), or `undefined` when the chunk goes on exactly as it came.
 * - Split invariance: for any cut of a stream into chunks, the concatenated output is the same
 *   (given a `measure` that answers the same for any longer prefix, and edits that depend only on
 *   their message and on earlier ones).
 * - Memory: at most `max` bytes of one message are buffered (default 64 KiB). A message of known
 *   length over `max` passes unedited without being buffered. A delimited message that grows past
 *   `max` without its delimiter passes unedited as it comes, and framing resumes after the
 *   delimiter. A `measure` that cannot tell a length within `max` bytes ends framing for that
 *   direction: everything passes untouched from there on. Each of these is logged once per
 *   direction.
 * - Addon mistakes never throw into the relay or lose bytes: an edit that throws or answers
 *   something else is reported (as a failure of the hook) and its message passes unedited; a bad
 *   framing or measure answer is reported and the direction passes untouched from there on.
 *   Arguments of the wrong type throw a TypeError at the call (the hook's own failure).
 * - Bytes of a message that is still incomplete when its direction ends are not sent (there is
 *   no hook at a FIN).
 */
import type { DataChunk, DataVerdict, Direction, Framing, HookContext, MessageEdit } from "./api.js";

/** The default `max`: bytes of one message that may be buffered. */
export const DEFAULT_MAX = 64 * 1024;

export type MessageHelper = HookContext["messages"];
type Edit = (message: Buffer) => MessageEdit;
type FramingArg = Framing | (() => Framing);

/** What the helper tells its host: a line for `ctx.log`, and an addon mistake (reported like a hook failure). */
export interface MessageHost {
  log(line: string): void;
  failed(err: unknown): void;
}

/** The `ctx.messages` function of one session and addon; its buffers are made on first use. */
export function messageHelper(host: MessageHost): MessageHelper {
  let up: MessageBuffer | undefined;
  let down: MessageBuffer | undefined;
  return (chunk: DataChunk, framing: FramingArg, edit: Edit): DataVerdict | undefined => {
    const direction = typeof chunk === "object" && chunk !== null ? chunk.direction : undefined;
    if (direction !== "up" && direction !== "down") throw new TypeError("ctx.messages: the first argument must be the onData chunk");
    if (!(chunk.data instanceof Uint8Array)) throw new TypeError("ctx.messages: chunk.data must be a Uint8Array");
    if (typeof framing !== "function" && (typeof framing !== "object" || framing === null))
      throw new TypeError("ctx.messages: framing must be an object or a function");
    if (typeof edit !== "function") throw new TypeError("ctx.messages: edit must be a function");
    const buffer = direction === "up" ? (up ??= new MessageBuffer(direction, host)) : (down ??= new MessageBuffer(direction, host));
    return buffer.feed(chunk.data, framing, edit);
  };
}

const EMPTY = Buffer.alloc(0);

/** A framing checked and turned into bytes. */
type Frame =
  | { readonly kind: "delimiter"; readonly delimiter: Buffer; readonly max: number }
  | { readonly kind: "length"; readonly length: number; readonly max: number }
  | { readonly kind: "measure"; readonly measure: (buffered: Uint8Array) => number | undefined; readonly max: number };

/** One direction of one session. */
export class MessageBuffer {
  /** Bytes of the next message, received and not yet complete: `held[0, heldLength)`. Never written where a message was handed out. */
  private held: Buffer = EMPTY;
  private heldLength = 0;
  /** Delimiter framing: `held` before this offset has no delimiter start (resumes the search). */
  private scanned = 0;
  private scannedFor: Buffer = EMPTY;
  /** Bytes still to pass untouched (an edit's `pass`, or a message over `max` of known length). */
  private pass = 0;
  /** Passing an oversized delimited message: the delimiter ends it. `tail` is its last bytes (a delimiter may span chunks). */
  private skipping: Buffer | undefined;
  private tail: Buffer = EMPTY;
  /** Framing has ended for this direction: everything passes. */
  private stopped = false;
  private warned = false;

  constructor(
    private readonly direction: Direction,
    private readonly host: MessageHost,
  ) {}

  /** One chunk in; the verdict for it out. */
  feed(data: Uint8Array, framing: FramingArg, edit: Edit): DataVerdict | undefined {
    const input = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (this.stopped || input.length === 0) return undefined;
    if (this.heldLength === 0 && this.skipping === undefined && this.pass >= input.length) {
      this.pass -= input.length;
      return undefined;
    }
    const out: Uint8Array[] = [];
    const hadHeld = this.heldLength > 0;
    let changed = hadHeld;
    let src = input;
    if (hadHeld) {
      this.append(input);
      src = this.held.subarray(0, this.heldLength);
    }
    let pos = 0;
    while (pos < src.length) {
      if (this.pass > 0) {
        const n = Math.min(this.pass, src.length - pos);
        out.push(src.subarray(pos, pos + n));
        this.pass -= n;
        pos += n;
        continue;
      }
      if (this.skipping !== undefined) {
        pos = this.skip(src, pos, out);
        continue;
      }
      const frame = this.frame(framing);
      if (frame === undefined) {
        out.push(src.subarray(pos));
        pos = src.length;
        break;
      }
      const rest = src.subarray(pos);
      const length = this.measure(frame, rest, pos === 0 && src !== input);
      if (length === null) {
        // The framing or measure was wrong: reported; everything passes from here on.
        out.push(rest);
        pos = src.length;
        break;
      }
      if (length === undefined) {
        if (rest.length <= frame.max) break;
        if (frame.kind === "delimiter") {
          this.warn(`a message over ${frame.max} bytes: passing it unedited`);
          this.skipping = frame.delimiter;
          this.tail = EMPTY;
          continue;
        }
        this.warn(`no message length within ${frame.max} bytes: passing everything unedited from here on`);
        this.stopped = true;
        out.push(rest);
        pos = src.length;
        break;
      }
      if (length > frame.max) {
        this.warn(`a message over ${frame.max} bytes: passing it unedited`);
        this.pass = length;
        continue;
      }
      if (length > rest.length) break;
      const message = src.subarray(pos, pos + length);
      pos += length;
      if (this.answer(message, this.edited(edit, message), out)) changed = true;
    }
    this.keep(src, pos, src === input);
    if (this.heldLength > 0) changed = true;
    return changed ? { replace: out.length === 1 ? out[0]! : Buffer.concat(out) } : undefined;
  }

  /** Keeps `src[pos…]` as the held bytes of the next message. */
  private keep(src: Buffer, pos: number, fromInput: boolean): void {
    const rest = src.length - pos;
    if (rest === 0) {
      this.held = EMPTY;
      this.heldLength = 0;
      this.scanned = 0;
      return;
    }
    if (!fromInput && pos === 0) return;
    // A message handed out may be a view of `held`: the rest goes to fresh memory.
    const next = Buffer.allocUnsafe(Math.max(rest * 2, 256));
    src.copy(next, 0, pos);
    // `scanned` was measured on src[pos…], which is what `held` now starts with.
    this.held = next;
    this.heldLength = rest;
  }

  /** Appends to `held`, growing it (never in place of bytes handed out: those are before heldLength). */
  private append(input: Buffer): void {
    const needed = this.heldLength + input.length;
    if (needed > this.held.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, this.held.length * 2));
      this.held.copy(grown, 0, 0, this.heldLength);
      this.held = grown;
    }
    input.copy(this.held, this.heldLength);
    this.heldLength = needed;
  }

  /** Passes an oversized delimited message up to and including its delimiter; returns the new position. */
  private skip(src: Buffer, pos: number, out: Uint8Array[]): number {
    const delimiter = this.skipping!;
    const rest = src.subarray(pos);
    const joined = this.tail.length === 0 ? rest : Buffer.concat([this.tail, rest]);
    const at = joined.indexOf(delimiter);
    if (at === -1) {
      out.push(rest);
      this.tail = Buffer.from(joined.subarray(Math.max(0, joined.length - (delimiter.length - 1))));
      return src.length;
    }
    const end = at + delimiter.length - this.tail.length;
    out.push(rest.subarray(0, end));
    this.skipping = undefined;
    this.tail = EMPTY;
    return pos + end;
  }

  /** The framing for the next message, checked; undefined (reported, framing ends) when it is wrong. */
  private frame(framing: FramingArg): Frame | undefined {
    let f: unknown = framing;
    try {
      if (typeof framing === "function") f = framing();
    } catch (err) {
      return this.end(err);
    }
    const problem = (what: string) => this.end(new TypeError(`ctx.messages: ${what}`));
    if (typeof f !== "object" || f === null) return problem("the framing function must return a framing object");
    const spec = f as { delimiter?: unknown; length?: unknown; measure?: unknown; max?: unknown };
    const max = spec.max === undefined ? DEFAULT_MAX : spec.max;
    if (typeof max !== "number" || !Number.isSafeInteger(max) || max < 1) return problem(`max must be a positive integer, got ${String(max)}`);
    if (spec.delimiter !== undefined) {
      const delimiter =
        typeof spec.delimiter === "string" ? Buffer.from(spec.delimiter) : spec.delimiter instanceof Uint8Array ? Buffer.from(spec.delimiter) : undefined;
      if (delimiter === undefined || delimiter.length === 0) return problem("delimiter must be a non-empty string or Uint8Array");
      return { kind: "delimiter", delimiter, max };
    }
    if (spec.length !== undefined) {
      if (typeof spec.length !== "number" || !Number.isSafeInteger(spec.length) || spec.length < 1)
        return problem(`length must be a positive integer, got ${String(spec.length)}`);
      return { kind: "length", length: spec.length, max };
    }
    if (typeof spec.measure === "function") return { kind: "measure", measure: spec.measure as (b: Uint8Array) => number | undefined, max };
    return problem("framing needs a delimiter, a length or a measure function");
  }

  /**
   * The length of the message at the start of `rest`: a number (it may be more than `rest` has),
   * undefined when not known yet, null when the measure failed (reported; framing has ended).
   */
  private measure(frame: Frame, rest: Buffer, resumable: boolean): number | undefined | null {
    if (frame.kind !== "delimiter") this.scannedFor = EMPTY;
    switch (frame.kind) {
      case "length":
        return frame.length;
      case "delimiter": {
        const d = frame.delimiter;
        const from = resumable && this.scannedFor.equals(d) ? this.scanned : 0;
        const at = rest.indexOf(d, from);
        this.scannedFor = d;
        this.scanned = at === -1 ? Math.max(0, rest.length - (d.length - 1)) : 0;
        return at === -1 ? undefined : at + d.length;
      }
      case "measure": {
        let length: unknown;
        try {
          length = frame.measure(rest.length > frame.max ? rest.subarray(0, frame.max) : rest);
        } catch (err) {
          this.end(err);
          return null;
        }
        if (length === undefined) return undefined;
        if (typeof length !== "number" || !Number.isSafeInteger(length) || length < 1) {
          this.end(new TypeError(`ctx.messages: measure must return a positive integer or undefined, got ${String(length)}`));
          return null;
        }
        return length;
      }
    }
  }

  /** Calls `edit`; undefined when it threw (reported: the message passes unedited). */
  private edited(edit: Edit, message: Buffer): { value: unknown } | undefined {
    try {
      return { value: edit(message) };
    } catch (err) {
      this.host.failed(err);
      return undefined;
    }
  }

  /** Applies one edit's answer to `out`; true when it replaced the message. */
  private answer(message: Buffer, result: { value: unknown } | undefined, out: Uint8Array[]): boolean {
    const value = result?.value;
    if (result === undefined || value === undefined) {
      out.push(message);
      return false;
    }
    if (typeof value === "string" || value instanceof Uint8Array) {
      out.push(typeof value === "string" ? Buffer.from(value) : value);
      return true;
    }
    const spec =
      typeof value === "object" && value !== null && typeof (value as { then?: unknown }).then !== "function"
        ? (value as { replace?: unknown; pass?: unknown })
        : undefined;
    const replace = spec?.replace;
    const pass = spec?.pass ?? 0;
    const validPass = typeof pass === "number" && pass >= 0 && (Number.isSafeInteger(pass) || pass === Infinity);
    if (spec === undefined || !(replace === undefined || typeof replace === "string" || replace instanceof Uint8Array) || !validPass) {
      this.host.failed(
        new TypeError(
          `ctx.messages: edit must return bytes, a string, { replace?, pass? } or undefined, synchronously; got ${describe(value)} (message passed unedited)`,
        ),
      );
      out.push(message);
      return false;
    }
    this.pass = pass as number;
    if (replace === undefined) {
      out.push(message);
      return false;
    }
    out.push(typeof replace === "string" ? Buffer.from(replace) : replace);
    return true;
  }

  /** Reports an addon mistake in the framing; framing ends for this direction. */
  private end(err: unknown): undefined {
    this.host.failed(err);
    this.warn("framing failed: passing everything unedited from here on");
    this.stopped = true;
    return undefined;
  }

  private warn(line: string): void {
    if (this.warned) return;
    this.warned = true;
    this.host.log(`messages (${this.direction}): ${line}`);
  }
}

function describe(value: unknown): string {
  if (typeof value === "object" && value !== null) return typeof (value as { then?: unknown }).then === "function" ? "a promise" : "an object of another shape";
  return typeof value;
}
