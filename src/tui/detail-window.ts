/**
 * The detail view's window onto one session's rows: a bounded run of items (stream turns, UDP
 * datagrams or events) that moves as the view scrolls, so no view holds a whole session and no
 * read blocks the relay (the TUI shares its thread, and SQLite reads are synchronous).
 *
 * Contract:
 * - Every `step` does a bounded amount of reading: one page of at most PAGE_ROWS metadata rows,
 *   and payload for rows whose stored bytes add up to at most STEP_BYTES (one row more when the
 *   first alone is larger). Rows stored larger than ROW_LOAD_LIMIT are never loaded here (the view
 *   says how big they are; `e` exports them). The caller runs steps one per macrotask.
 * - A turn (consecutive untouched chunks of one direction; a chunk with a verdict alone, as
 *   `conversationTurns` groups them) holds at most SHOWN_BYTES of payload, from its start; the
 *   rest of its reads fold into one summary row (`reads`, `dataBytes`), so a 10 GB download is a
 *   few rows. Datagrams and events are one item each, payload cut to SHOWN_BYTES per side.
 * - Items are always whole and contiguous in (seq, id) order: `earlier`/`later` say whether rows
 *   exist before the first / may exist after the last. Forward steps append (or grow the last,
 *   still open turn); backward steps prepend one whole item. `trimFront`/`trimBack` drop items the
 *   view has scrolled away from; the caller moves its scroll by the lines of what changed at the front.
 * - A live session grows at the end: a forward step after `later` became false reads what is new.
 */
import type { ChunkMeta, DatagramMeta, EventRow, RowKey, ShownChunk, ShownDatagram, SessionSource } from "./types.js";

/** Metadata rows read per step. */
export const PAGE_ROWS = 512;
/** Stored bytes of the rows whose payload one step reads (SQLite reads a whole blob even to cut it). */
export const STEP_BYTES = 4 * 1024 * 1024;
/** A row stored larger than this is shown by its size only. */
export const ROW_LOAD_LIMIT = 16 * 1024 * 1024;
/** Payload a turn or a datagram side holds at most: its first 16 KiB; "… N more bytes" says the rest (e exports it). */
export const SHOWN_BYTES = 16 * 1024;
/** Characters of an event message held. */
export const EVENT_MESSAGE_CHARS = 8 * 1024;
/** Events or datagrams read per step. */
const ITEM_PAGE = 200;

export type WindowKind = "turns" | "datagrams" | "events";
export type WindowRow = ShownChunk | ShownDatagram | EventRow;

export interface WindowItem {
  readonly first: RowKey;
  last: RowKey;
  rows: WindowRow[];
  /** Payload bytes (or message characters) held. */
  bytes: number;
  /** Turns only: untouched chunks of `direction` may still join it. */
  open: boolean;
  /** Turns only: the shown prefix may still grow (no row was cut yet, fewer than SHOWN_BYTES). */
  prefixOpen: boolean;
  direction?: "up" | "down";
}

/**
 * What a step changed at the front, so the caller can keep what is on screen in place: items
 * `added` before the first or dropped from the front, and whether the "earlier" marker showed before.
 */
export interface StepResult {
  readonly front?: { readonly items: readonly WindowItem[]; readonly added: boolean; readonly earlierBefore: boolean };
}

const BEFORE_EVERYTHING: RowKey = { seq: -Number.MAX_SAFE_INTEGER, id: -Number.MAX_SAFE_INTEGER };
const AFTER_EVERYTHING: RowKey = { seq: Number.MAX_SAFE_INTEGER, id: Number.MAX_SAFE_INTEGER };

const compare = (a: RowKey, b: RowKey) => (a.seq !== b.seq ? a.seq - b.seq : a.id - b.id);

/** The state of a backward search for the start of the turn before the window. */
interface BackScan {
  /** Scanning continues before this key. */
  from: RowKey;
  /** The earliest row of the turn found so far. */
  start?: ChunkMeta;
  /** Whether rows exist before the turn (known once its start is). */
  earlierAfter: boolean;
  /** Set once the turn's start is known: the turn is being built forward from it, up to the window. */
  build?: DetailWindow;
}

export class DetailWindow {
  items: WindowItem[] = [];
  /** Rows exist before the first item (or, for a window reset at the end, may). */
  earlier = false;
  /** Rows may exist after the last item: a forward step has more to read. */
  later = true;
  /** Bumped on every change (for memoized lines). */
  version = 0;
  /** Where a forward step of an empty window starts (after this key). */
  private cursor: RowKey = BEFORE_EVERYTHING;
  private back: BackScan | undefined;

  constructor(
    readonly source: SessionSource,
    readonly sessionId: number,
    readonly kind: WindowKind,
    /** Turns built for a backward step stop before this key. */
    private readonly until: RowKey = AFTER_EVERYTHING,
  ) {}

  /** Starts over at the session's first row. */
  resetStart(): void {
    this.items = [];
    this.earlier = false;
    this.later = true;
    this.cursor = BEFORE_EVERYTHING;
    this.back = undefined;
    this.version++;
  }

  /** Starts over at the session's end: backward steps then fill it with the last items. */
  resetEnd(): void {
    this.items = [];
    this.earlier = true;
    this.later = false;
    this.cursor = AFTER_EVERYTHING;
    this.back = undefined;
    this.version++;
  }

  /** The turns' rows, the datagrams or the events held, in order. */
  rows(): WindowRow[] {
    return this.items.flatMap((i) => i.rows);
  }

  /** The last turn may still grow from rows already in the capture (its reads are being counted). */
  get growing(): boolean {
    const last = this.items[this.items.length - 1];
    return this.kind === "turns" && this.later && last?.open === true;
  }

  /** A backward step is half done (the turn before is being found or built): finish it first. */
  get busy(): boolean {
    return this.back !== undefined;
  }

  /** Held payload bytes. */
  get bytes(): number {
    return this.items.reduce((n, i) => n + i.bytes, 0);
  }

  /**
   * One bounded forward step. With `wantMore` false only the open last turn keeps growing (its
   * reads are counted); a row that would start a new item is left for later.
   */
  forward(wantMore: boolean): StepResult {
    // Reset at the end and not filled yet, or filling backward: backward steps come first.
    if (this.back !== undefined || (this.items.length === 0 && this.cursor === AFTER_EVERYTHING)) return {};
    const start = this.items.length === 0 ? this.cursor : this.items[this.items.length - 1]!.last;
    switch (this.kind) {
      case "turns":
        this.forwardTurns(start, wantMore);
        break;
      case "datagrams":
      case "events":
        if (wantMore) this.forwardItems(start);
        break;
      default: {
        const never: never = this.kind;
        return never;
      }
    }
    this.version++;
    return {};
  }

  /** One bounded backward step: prepends the item before the first one when it is complete. */
  backward(): StepResult {
    if (!this.earlier) return {};
    const first = this.items[0]?.first ?? this.cursor;
    const earlierBefore = this.earlier;
    let added: WindowItem[] = [];
    switch (this.kind) {
      case "turns":
        added = this.backwardTurn(first);
        break;
      case "datagrams":
      case "events":
        added = this.backwardItems(first);
        break;
      default: {
        const never: never = this.kind;
        return never;
      }
    }
    this.version++;
    if (added.length === 0 && earlierBefore === this.earlier) return {};
    this.items = [...added, ...this.items];
    return { front: { items: added, added: true, earlierBefore } };
  }

  /** Drops `count` items from the front (the caller moves its scroll up by their lines). */
  trimFront(count: number): StepResult {
    if (count <= 0) return {};
    const dropped = this.items.slice(0, count);
    const earlierBefore = this.earlier;
    this.items = this.items.slice(count);
    this.earlier = true;
    this.version++;
    return { front: { items: dropped, added: false, earlierBefore } };
  }

  /** Drops `count` items from the back; a forward step reads them again when wanted. */
  trimBack(count: number): void {
    if (count <= 0 || count >= this.items.length) return;
    this.items = this.items.slice(0, this.items.length - count);
    const last = this.items[this.items.length - 1]!;
    // The turn that is now last was followed by another: it is complete.
    last.open = false;
    this.later = true;
    this.version++;
  }

  // --- turns ------------------------------------------------------------------------------------

  private forwardTurns(after: RowKey, wantMore: boolean): void {
    const meta = this.source.chunkMeta(this.sessionId, { after, limit: PAGE_ROWS });
    let budget = STEP_BYTES;
    let consumed = 0;
    for (const m of meta) {
      if (compare(m, this.until) >= 0) {
        this.later = false;
        return;
      }
      const last = this.items[this.items.length - 1];
      const joins = last?.open === true && m.verdict === null && last.direction === m.direction;
      if (!joins && !wantMore) {
        // The last turn is complete: this row starts the next one, left for when it is wanted.
        if (last !== undefined) last.open = false;
        this.later = true;
        return;
      }
      const needsPayload = !joins || last.prefixOpen;
      const cost = needsPayload ? stored(m) : 0;
      if (cost > budget && consumed > 0) {
        this.later = true;
        return;
      }
      if (needsPayload) budget -= cost;
      consumed++;
      if (!joins) {
        if (last !== undefined) last.open = false;
        const row = this.loadChunk(m, SHOWN_BYTES);
        this.items.push({
          first: m,
          last: m,
          rows: [row],
          bytes: held(row),
          open: m.verdict === null,
          prefixOpen: m.verdict === null && row.data.length === m.dataBytes && row.data.length < SHOWN_BYTES,
          direction: m.direction,
        });
        continue;
      }
      last.last = m;
      if (last.prefixOpen) {
        const row = this.loadChunk(m, SHOWN_BYTES - last.bytes);
        last.rows.push(row);
        last.bytes += row.data.length;
        if (row.data.length < m.dataBytes || last.bytes >= SHOWN_BYTES) last.prefixOpen = false;
        continue;
      }
      // Past what the turn shows: count the read in the summary row.
      const tail = last.rows[last.rows.length - 1] as ShownChunk;
      if (tail.reads === undefined) {
        last.rows.push({ ...metaRow(m), data: EMPTY, dataBytes: m.dataBytes, reads: 1, lastSeq: m.seq });
      } else {
        last.rows[last.rows.length - 1] = {
          ...tail,
          size: tail.size + m.size,
          dataBytes: (tail.dataBytes ?? 0) + m.dataBytes,
          reads: tail.reads + 1,
          lastSeq: m.seq,
        };
      }
    }
    this.later = meta.length === PAGE_ROWS;
  }

  /** Finds where the turn before `first` starts (in bounded steps), then builds it forward (in bounded steps). */
  private backwardTurn(first: RowKey): WindowItem[] {
    const back = (this.back ??= { from: first, earlierAfter: false });
    if (back.build === undefined) {
      // Pages before a key come nearest first: walk back while the rows join one untouched turn.
      const meta = this.source.chunkMeta(this.sessionId, { before: back.from, limit: PAGE_ROWS });
      let found = false;
      for (const m of meta) {
        const start = back.start;
        if (start === undefined) {
          back.start = m;
          if (m.verdict !== null) {
            // A chunk with a verdict is a turn of its own; a row after it in this page is earlier still.
            found = true;
            back.earlierAfter = meta.length > 1;
            break;
          }
        } else if (m.verdict === null && m.direction === start.direction) {
          back.start = m;
        } else {
          found = true;
          back.earlierAfter = true;
          break;
        }
        back.from = m;
      }
      if (!found) {
        if (meta.length === PAGE_ROWS) return [];
        if (back.start === undefined) {
          this.earlier = false;
          this.back = undefined;
          return [];
        }
        back.earlierAfter = false;
      }
      back.build = new DetailWindow(this.source, this.sessionId, "turns", first);
      back.build.cursor = { seq: back.start!.seq, id: back.start!.id - 1 };
    }
    const build = back.build;
    build.forwardTurns(build.items.length === 0 ? build.cursor : build.items[build.items.length - 1]!.last, true);
    if (build.later) return [];
    this.earlier = back.earlierAfter;
    this.back = undefined;
    if (this.items.length === 0) {
      // A window reset at the end: the build ran to the end, and its last turn may still grow.
      this.later = false;
    } else {
      for (const item of build.items) item.open = false;
    }
    return build.items;
  }

  private loadChunk(m: ChunkMeta, cap: number): ShownChunk {
    const payload = stored(m) > ROW_LOAD_LIMIT ? undefined : this.source.chunkPayload([m.id], cap).get(m.id);
    return {
      ...metaRow(m),
      data: payload?.data ?? EMPTY,
      dataBytes: m.dataBytes,
      sent: m.sentBytes === null ? null : (payload?.sent ?? EMPTY),
      sentBytes: m.sentBytes,
    };
  }

  // --- datagrams and events ---------------------------------------------------------------------

  private forwardItems(after: RowKey): void {
    if (this.kind === "events") {
      const rows = this.source.eventPage(this.sessionId, { afterId: after === BEFORE_EVERYTHING ? 0 : after.id, limit: ITEM_PAGE, cap: EVENT_MESSAGE_CHARS });
      for (const row of rows) this.items.push(single(row, this.kind));
      this.later = rows.length === ITEM_PAGE;
      return;
    }
    const meta = this.source.datagramMeta(this.sessionId, { after, limit: ITEM_PAGE });
    const rows = this.datagramRows(meta);
    for (const row of rows) this.items.push(single(row, this.kind));
    this.later = meta.length === ITEM_PAGE || rows.length < meta.length;
  }

  private backwardItems(first: RowKey): WindowItem[] {
    if (this.kind === "events") {
      const rows = this.source.eventPage(this.sessionId, {
        beforeId: first === AFTER_EVERYTHING ? Number.MAX_SAFE_INTEGER : first.id,
        limit: ITEM_PAGE,
        cap: EVENT_MESSAGE_CHARS,
      });
      this.earlier = rows.length === ITEM_PAGE;
      return rows.reverse().map((r) => single(r, this.kind));
    }
    // Nearest first, so the step's budget keeps the rows next to the window.
    const meta = this.source.datagramMeta(this.sessionId, { before: first, limit: ITEM_PAGE });
    const rows = this.datagramRows(meta);
    this.earlier = meta.length === ITEM_PAGE || rows.length < meta.length;
    return rows.reverse().map((r) => single(r, this.kind));
  }

  /** Payload for datagram rows within the step's budget; rows past it are left for the next step. */
  private datagramRows(meta: DatagramMeta[]): ShownDatagram[] {
    let budget = STEP_BYTES;
    const chosen: DatagramMeta[] = [];
    for (const m of meta) {
      const cost = stored(m);
      if (cost > budget && chosen.length > 0) break;
      budget -= Math.min(cost, budget);
      chosen.push(m);
    }
    const payload = this.source.datagramPayload(
      chosen.filter((m) => stored(m) <= ROW_LOAD_LIMIT).map((m) => m.id),
      SHOWN_BYTES,
    );
    return chosen.map((m) => {
      const { dataBytes, sentBytes, ...facts } = m;
      const p = payload.get(m.id);
      return { ...facts, data: p?.data ?? EMPTY, sent: sentBytes === null ? null : (p?.sent ?? EMPTY), dataBytes, sentBytes };
    });
  }
}

const EMPTY = Buffer.alloc(0);

function stored(m: { readonly dataBytes: number; readonly sentBytes: number | null }): number {
  return m.dataBytes + (m.sentBytes ?? 0);
}

function held(row: ShownChunk): number {
  return row.data.length + (row.sent?.length ?? 0);
}

function metaRow(m: ChunkMeta): ShownChunk {
  return { id: m.id, session_id: m.session_id, seq: m.seq, at: m.at, direction: m.direction, size: m.size, verdict: m.verdict, data: EMPTY, sent: null };
}

function single(row: ShownDatagram | EventRow, kind: WindowKind): WindowItem {
  const key = kind === "events" ? { seq: row.id, id: row.id } : { seq: (row as ShownDatagram).seq, id: row.id };
  const bytes = kind === "events" ? (row as EventRow).message.length : (row as ShownDatagram).data.length + ((row as ShownDatagram).sent?.length ?? 0);
  return { first: key, last: key, rows: [row], bytes, open: false, prefixOpen: false };
}
