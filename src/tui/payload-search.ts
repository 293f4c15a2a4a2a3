/**
 * A payload filter (`~"regex"`) in the live TUI, evaluated in bounded steps on the relay's thread.
 *
 * Why not SQL: `toSql` turns `~` into EXISTS subqueries that read the payload of every session
 * they look at; the list polls ~10 times a second and better-sqlite3 is synchronous, so one poll
 * over a multi-GB capture froze every tunnel for seconds. Why not a worker thread running that
 * SQL: each poll would still re-read every payload (a core busy for good on a 2-core machine), and
 * the list's window, steps and edges would all become asynchronous. Instead the payload part is
 * evaluated once per chunk, incrementally, and cached:
 *
 * - Each `step()` (one per poll) reads at most `stepBytes` of stored payload (one row more than the
 *   rest of the budget only when it is the step's first), at most `stepRows` rows of metadata and
 *   pages of at most 256 rows: bounded work, whatever the capture's size. It visits, in a rotating
 *   order so none starves: sessions newer than the newest seen (follow mode shows them first),
 *   sessions in progress (open ones: only chunks and datagrams after the last one checked; closed
 *   ones whose scan a budget cut), and older sessions, newest first, down to the first.
 * - Per session and per distinct `~` term: whether some payload matched (final once true: rows
 *   are only ever appended) and how far the scan got, as the (seq, id) key of `chunkMeta` pages.
 *   A session stops being read as soon as all its terms matched, and is not read at all when its
 *   columns alone rule it out (the filter with `~` terms as true where they count for a match and
 *   false under a `!`: an upper bound of the answer).
 * - A closed session scanned to its end has a final answer: matching ids go into a sorted array
 *   (ids of the others are not kept). Open sessions keep their row (refreshed when visited) and
 *   their answer is re-evaluated from it and the terms matched so far.
 *
 * The list shows what is known: final matches, and open sessions scanned to their end at least
 * once that match so far. Once every session has been searched (`progress()`), the list holds
 * exactly the sessions `toSql` selects (columns by `toPredicate`, payload by `matchPayload`: the
 * same code SQLite calls). It is a `SessionSource`'s `sessions`/`count` for the session window
 * (session-window.ts) with the filter already applied: a query's `filter` is ignored.
 */
import { payloadTerms, usesPayload, type Filter, type PayloadTerm } from "../filter/ast.js";
import { assertNever } from "../lang/assert-never.js";
import { toPredicate } from "../filter/index.js";
import { matchPayload } from "../filter/match.js";
import type { RowKey, RowPayload, SessionQuery, SessionRow, SessionSource, TlsRow } from "./types.js";

/** At most this much stored payload is read per step (the rows' full lengths: SQLite reads a blob whole). */
export const STEP_BYTES = 4 * 1024 * 1024;
/** At most this many rows (sessions, chunk and datagram metadata) per step. */
export const STEP_ROWS = 2048;
const PAGE_ROWS = 256;

export interface SearchProgress {
  /** Sessions whose answer is known (closed and scanned, open and scanned to their end once, or ruled out by their columns). */
  readonly searched: number;
  /** Sessions in the capture, as far as the search has counted them. */
  readonly total: number;
}

export interface PayloadSearchOptions {
  readonly stepBytes?: number;
  readonly stepRows?: number;
}

type Source = Pick<SessionSource, "sessions" | "count" | "session" | "chunkMeta" | "chunkPayload" | "datagramMeta" | "datagramPayload" | "tls">;
/** A session's tls row for `tls`, `alpn:` and `sni:` terms (toPredicate's context.tls). */
type TlsOf = ((row: SessionRow) => TlsRow | undefined) | undefined;
/** The filter over a row, `now` and which `~` terms matched (by index in `terms`). */
type Evaluate = (row: SessionRow, now: number, hits: readonly boolean[]) => boolean;

/** A session being scanned, or open (its answer may still change). */
interface Active {
  row: SessionRow;
  readonly hits: boolean[];
  chunkAfter?: RowKey;
  datagramAfter?: RowKey;
  /** Scanned to its last chunk and datagram at least once (or all its terms matched). */
  scanned: boolean;
  /** Its answer is known: scanned, or ruled out by its columns alone. */
  known: boolean;
}

interface Budget {
  bytes: number;
  rows: number;
  /** Payload read this step (the first row may exceed the budget on its own). */
  read: boolean;
}

/** Whether a filter has `~` terms (then the TUI's list goes through a PayloadSearch). */
export function hasPayloadTerm(filter: Filter | undefined): boolean {
  return filter !== undefined && usesPayload(filter);
}

export class PayloadSearch {
  private readonly terms: readonly PayloadTerm[];
  private readonly exact: Evaluate;
  /** True unless the row's columns alone rule a match out. */
  private readonly possible: Evaluate;
  private readonly stepBytes: number;
  private readonly stepRows: number;
  /** Closed, scanned, matching: ascending (after `fresh` is merged in). */
  private matches: number[] = [];
  private fresh: number[] = [];
  /** Open sessions that match as far as is known, ascending (rebuilt each step). */
  private openMatches: number[] = [];
  private readonly active = new Map<number, Active>();
  /** Newest session id visited from the top; sessions after it are new (undefined before the first step). */
  private top: number | undefined;
  /** Sessions below this id are not visited yet (0: all visited). */
  private bottom = 0;
  private total = 0;
  private finished = 0;
  private phase = 0;

  constructor(
    private readonly source: Source,
    readonly filter: Filter,
    options: PayloadSearchOptions = {},
  ) {
    this.terms = distinctPayloadTerms(filter);
    const index = new Map(this.terms.map((t, i) => [termKey(t), i]));
    const tls: TlsOf = source.tls === undefined ? undefined : (row) => source.tls!(row.id);
    this.exact = compile(
      filter,
      (term) => {
        const i = index.get(termKey(term))!;
        return (_row, _now, hits) => hits[i] === true;
      },
      tls,
    );
    this.possible = compile(filter, (_term, positive) => () => positive, tls);
    this.stepBytes = Math.max(1, options.stepBytes ?? STEP_BYTES);
    // A session in progress costs a row to refresh and one per page: four rows always make progress.
    this.stepRows = Math.max(4, options.stepRows ?? STEP_ROWS);
  }

  /** One bounded step of the search (see the file comment); `now` for `dur` of open sessions. Throws what the source throws. */
  step(now: number = Date.now()): void {
    if (this.top === undefined) {
      // The first step: where the capture ends now (newer sessions are counted as they are found).
      const top = this.source.sessions({ limit: 1 })[0]?.id ?? 0;
      this.total = top === 0 ? 0 : this.source.count({ before: top + 1 });
      this.bottom = top + 1;
      this.top = top;
    }
    const budget: Budget = { bytes: this.stepBytes, rows: this.stepRows, read: false };
    const phases = [() => this.newer(budget, now), () => this.inProgress(budget, now), () => this.older(budget, now)];
    for (let i = 0; i < phases.length && !spent(budget); i++) phases[(this.phase + i) % phases.length]!();
    this.phase = (this.phase + 1) % phases.length;
    const open: number[] = [];
    for (const [id, state] of this.active) if (state.known && this.exact(state.row, now, state.hits)) open.push(id);
    this.openMatches = open.sort((a, b) => a - b);
  }

  progress(): SearchProgress {
    let scanned = 0;
    for (const state of this.active.values()) if (state.known) scanned++;
    return { searched: this.finished + scanned, total: this.total };
  }

  /** Whether every session counted so far has been searched. */
  done(): boolean {
    const { searched, total } = this.progress();
    return searched >= total;
  }

  /** Matching sessions as known so far, by id range, order and limit as CaptureReader.sessions (`filter` ignored). Rows are read fresh. */
  sessions(query: SessionQuery = {}): SessionRow[] {
    const limit = Math.max(0, Math.floor(query.limit ?? 100));
    const [a, b] = this.sorted();
    const lo = query.after ?? -Infinity;
    const hi = query.before ?? Infinity;
    const ids: number[] = [];
    // Walk both ascending arrays from the end the order starts at, taking the nearer id each time.
    if (query.order === "oldest") {
      let i = lowerBound(a, lo, true);
      let j = lowerBound(b, lo, true);
      while (ids.length < limit) {
        const next = Math.min(a[i] ?? Infinity, b[j] ?? Infinity);
        if (next >= hi) break;
        ids.push(next);
        if (next === a[i]) i++;
        else j++;
      }
    } else {
      let i = lowerBound(a, hi, false) - 1;
      let j = lowerBound(b, hi, false) - 1;
      while (ids.length < limit) {
        const next = Math.max(a[i] ?? -Infinity, b[j] ?? -Infinity);
        if (next <= lo) break;
        ids.push(next);
        if (next === a[i]) i--;
        else j--;
      }
    }
    const rows: SessionRow[] = [];
    for (const id of ids) {
      const row = this.source.session(id);
      if (row !== undefined) rows.push(row);
    }
    return rows;
  }

  /** How many sessions match as far as is known (`filter` ignored). */
  count(query: Omit<SessionQuery, "limit" | "order"> = {}): number {
    const lo = query.after ?? -Infinity;
    const hi = query.before ?? Infinity;
    return this.sorted().reduce((n, ids) => n + lowerBound(ids, hi, false) - lowerBound(ids, lo, true), 0);
  }

  /** The final matches and the open ones, each ascending (no id in both). */
  private sorted(): [readonly number[], readonly number[]] {
    if (this.fresh.length > 0) {
      this.matches = merge(
        this.matches,
        this.fresh.sort((a, b) => a - b),
      );
      this.fresh = [];
    }
    return [this.matches, this.openMatches];
  }

  /** Sessions created since the newest one seen, oldest first. */
  private newer(budget: Budget, now: number): void {
    while (!spent(budget)) {
      const rows = this.source.sessions({ after: this.top ?? 0, order: "oldest", limit: Math.min(PAGE_ROWS, budget.rows) });
      budget.rows -= Math.max(1, rows.length);
      if (rows.length === 0) return;
      for (const row of rows) {
        this.top = row.id;
        this.total++;
        this.visit(row, budget, now);
      }
    }
  }

  /** Sessions not yet visited, newest first. */
  private older(budget: Budget, now: number): void {
    while (this.bottom > 0 && !spent(budget)) {
      const rows = this.source.sessions({ before: this.bottom, limit: Math.min(PAGE_ROWS, budget.rows) });
      budget.rows -= Math.max(1, rows.length);
      if (rows.length === 0) this.bottom = 0;
      for (const row of rows) {
        this.bottom = row.id;
        this.visit(row, budget, now);
      }
    }
  }

  /**
   * Sessions in progress, round robin: one that got to its end goes to the back of the map; one
   * the budget cut stays first in line, so that it starts the phase (and, every third step, the
   * step, with a whole budget: it cannot be starved by the others).
   */
  private inProgress(budget: Budget, now: number): void {
    let left = this.active.size;
    for (const [id, state] of this.active) {
      if (left-- <= 0 || spent(budget)) return;
      budget.rows--;
      const row = this.source.session(id);
      if (row === undefined) {
        this.active.delete(id);
        this.finished++;
        continue;
      }
      state.row = row;
      if (!this.advance(id, state, budget, now)) return;
      if (this.active.delete(id)) this.active.set(id, state);
    }
  }

  private visit(row: SessionRow, budget: Budget, now: number): void {
    this.advance(row.id, { row, hits: this.terms.map(() => false), scanned: false, known: false }, budget, now);
  }

  /**
   * Scans the session as far as the budget goes: then it is final (closed and scanned to its end:
   * out of `active`) or active (kept in its place there, or added at the back). True unless the
   * budget cut the scan.
   */
  private advance(id: number, state: Active, budget: Budget, now: number): boolean {
    const open = state.row.status === "open";
    // The status is read before the rows: what a closed session wrote is all there.
    if (!this.possible(state.row, now, state.hits)) {
      state.known = true;
      if (open) this.active.set(id, state);
      else this.final(id, false);
      return true;
    }
    const complete = this.scan(id, state, budget);
    if (complete) state.scanned = true;
    state.known = state.scanned;
    if (complete && !open) this.final(id, this.exact(state.row, now, state.hits));
    else this.active.set(id, state);
    return complete;
  }

  private final(id: number, matches: boolean): void {
    this.active.delete(id);
    this.finished++;
    if (matches) this.fresh.push(id);
  }

  /** Reads the session's payload after the last rows checked, within the budget; true when it got to the end (or every term matched). */
  private scan(id: number, state: Active, budget: Budget): boolean {
    for (const table of ["chunks", "datagrams"] as const) {
      for (;;) {
        if (state.hits.every(Boolean)) return true;
        if (spent(budget)) return false;
        const after = table === "chunks" ? state.chunkAfter : state.datagramAfter;
        const query = { ...(after === undefined ? {} : { after }), limit: Math.min(PAGE_ROWS, budget.rows) };
        const page = table === "chunks" ? this.source.chunkMeta(id, query) : this.source.datagramMeta(id, query);
        budget.rows -= Math.max(1, page.length);
        if (page.length === 0) break;
        // Rows whose whole payload fits what is left of the budget (one at least when the step has read nothing yet).
        const chosen: { readonly id: number; readonly seq: number }[] = [];
        for (const row of page) {
          const bytes = row.dataBytes + (row.sentBytes ?? 0);
          if (bytes > budget.bytes && (budget.read || chosen.length > 0)) break;
          chosen.push(row);
          budget.bytes -= bytes;
          budget.read = true;
        }
        if (chosen.length === 0) return false;
        const ids = chosen.map((row) => row.id);
        const payload = table === "chunks" ? this.source.chunkPayload(ids) : this.source.datagramPayload(ids);
        for (const row of chosen) {
          const stored = payload.get(row.id);
          if (stored !== undefined) this.match(state.hits, stored);
          const key = { seq: row.seq, id: row.id };
          if (table === "chunks") state.chunkAfter = key;
          else state.datagramAfter = key;
        }
      }
    }
    return true;
  }

  /** As `filter_payload`: the term matches the row's data, or its sent bytes. */
  private match(hits: boolean[], stored: RowPayload): void {
    this.terms.forEach((term, i) => {
      if (!hits[i]) hits[i] = matchPayload(term.pattern, term.flags, stored.data) || matchPayload(term.pattern, term.flags, stored.sent);
    });
  }
}

function spent(budget: Budget): boolean {
  return budget.rows <= 0 || budget.bytes <= 0;
}

function termKey(term: PayloadTerm): string {
  return `${term.flags}/${term.pattern}`;
}

/** The distinct `~` terms of a filter, in order of first appearance. */
function distinctPayloadTerms(filter: Filter): PayloadTerm[] {
  const found = new Map<string, PayloadTerm>();
  for (const term of payloadTerms(filter)) if (!found.has(termKey(term))) found.set(termKey(term), term);
  return [...found.values()];
}

/** The filter with `~` terms answered by `payload` (told whether the term sits under an even number of `!`); every other term by `toPredicate`. */
function compile(filter: Filter, payload: (term: PayloadTerm, positive: boolean) => Evaluate, tls: TlsOf, positive = true): Evaluate {
  switch (filter.kind) {
    case "and": {
      const operands = filter.operands.map((o) => compile(o, payload, tls, positive));
      return (row, now, hits) => operands.every((o) => o(row, now, hits));
    }
    case "or": {
      const operands = filter.operands.map((o) => compile(o, payload, tls, positive));
      return (row, now, hits) => operands.some((o) => o(row, now, hits));
    }
    case "not": {
      const operand = compile(filter.operand, payload, tls, !positive);
      return (row, now, hits) => !operand(row, now, hits);
    }
    case "payload":
      return payload(filter, positive);
    case "all":
    case "glob":
    case "cidr":
    case "range":
    case "enum":
    case "tag":
    case "compare":
    case "tls":
    case "alpn":
    case "via":
    case "stage": {
      const predicate = toPredicate(filter);
      return (row, now) => predicate(row, tls === undefined ? { now } : { now, tls });
    }
    default:
      return assertNever(filter);
  }
}

/** The first index whose value is > `bound` (`strict`) or >= `bound`, in an ascending array. */
function lowerBound(sorted: readonly number[], bound: number, strict: boolean): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (strict ? sorted[mid]! <= bound : sorted[mid]! < bound) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Two ascending arrays as one (no id is in both). */
function merge(a: readonly number[], b: readonly number[]): number[] {
  if (b.length === 0) return a.slice();
  if (a.length === 0) return b.slice();
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) out.push(j >= b.length || (i < a.length && a[i]! < b[j]!) ? a[i++]! : b[j++]!);
  return out;
}
