/**
 * The list's window onto a capture that may hold 100,000 sessions: only the rows on screen are
 * queried, around the selected session, with the selection kept at its screen position. Every
 * query is an indexed range on the id (no OFFSET), so moving costs the same anywhere in the file.
 */
import type { Filter } from "../filter/index.js";
import type { SessionRow, SessionSource } from "./types.js";

/** What the window reads: a capture (CaptureReader), or a payload filter's search (payload-search.ts), which applies its filter itself. */
export type ListSource = Pick<SessionSource, "sessions">;

export interface WindowRequest {
  readonly filter?: Filter;
  /** The selected session; undefined selects the newest. */
  readonly selectedId: number | undefined;
  /** Where the selection sits on screen (0 = top row). */
  readonly position: number;
  readonly height: number;
  /** Sessions hidden from the view (`d`). */
  readonly hidden: ReadonlySet<number>;
  readonly now: number;
}

export interface SessionWindow {
  /** The rows to draw, oldest at the top. */
  readonly rows: SessionRow[];
  /** The selection after clamping (undefined only when no session matches). */
  readonly selectedId: number | undefined;
  /** The selection's row in `rows`. */
  readonly position: number;
}

/** Rows around the selection: `position` rows above it (fewer near the start), the rest below. */
export function windowAround(source: ListSource, request: WindowRequest): SessionWindow {
  const height = Math.max(1, request.height);
  const base = { ...(request.filter === undefined ? {} : { filter: request.filter }), now: request.now };
  const visible = (rows: SessionRow[]) => (request.hidden.size === 0 ? rows : rows.filter((r) => !request.hidden.has(r.id)));
  // Over-fetch a little so hidden rows do not leave holes.
  const extra = request.hidden.size;
  let selectedId = request.selectedId;
  if (selectedId === undefined) {
    const newest = visible(source.sessions({ ...base, limit: 1 + extra }))[0];
    if (newest === undefined) return { rows: [], selectedId: undefined, position: 0 };
    selectedId = newest.id;
  }
  const from = visible(source.sessions({ ...base, after: selectedId - 1, order: "oldest", limit: height + extra }));
  if (from.length === 0 || from[0]!.id !== selectedId) {
    // The selection is gone (hidden or filtered out): take the nearest older one, else newer.
    const older = visible(source.sessions({ ...base, before: selectedId, limit: 1 + extra }))[0];
    const next = older ?? from[0];
    if (next === undefined) return { rows: [], selectedId: undefined, position: 0 };
    return windowAround(source, { ...request, selectedId: next.id });
  }
  const wantAbove = Math.min(Math.max(0, request.position), height - 1);
  // Near the newest end there are few rows below: show more above instead of empty lines.
  const aboveCount = Math.max(wantAbove, height - from.length);
  const above = visible(source.sessions({ ...base, before: selectedId, limit: aboveCount + extra }))
    .slice(0, aboveCount)
    .reverse();
  const below = from.slice(0, height - above.length);
  return { rows: [...above, ...below], selectedId, position: above.length };
}

/** The session `steps` rows away from `id` (negative = older), or the last one in that direction. */
export function stepFrom(source: ListSource, filter: Filter | undefined, hidden: ReadonlySet<number>, id: number, steps: number, now: number): number {
  const base = { ...(filter === undefined ? {} : { filter }), now };
  const n = Math.abs(steps) + hidden.size;
  const rows = (steps > 0 ? source.sessions({ ...base, after: id, order: "oldest", limit: n }) : source.sessions({ ...base, before: id, limit: n })).filter(
    (r) => !hidden.has(r.id),
  );
  return rows[Math.min(Math.abs(steps), rows.length) - 1]?.id ?? id;
}

/** The oldest or newest matching session. */
export function edge(source: ListSource, filter: Filter | undefined, hidden: ReadonlySet<number>, which: "first" | "last", now: number): number | undefined {
  const rows = source.sessions({ ...(filter === undefined ? {} : { filter }), now, order: which === "first" ? "oldest" : "newest", limit: 1 + hidden.size });
  return rows.find((r) => !hidden.has(r.id))?.id;
}
