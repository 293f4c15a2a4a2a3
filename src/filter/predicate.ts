/**
 * A filter as a JavaScript predicate over one SessionRow: for sessions in memory (the TUI's live
 * view). It answers as `toSql` does for the same row and payloads, term by term, through the
 * same matchers (`match.ts`) and column table (`columns.ts`).
 */
import type { SessionRow } from "../model/capture-rows.js";
import { assertNever } from "../lang/assert-never.js";
import type { ComparisonOperator, Filter, Measure } from "./ast.js";
import { CIDR_COLUMNS, ENUM_COLUMNS, GLOB_COLUMNS, RANGE_COLUMNS } from "./columns.js";
import { compileRegExp, inCidr, matchGlob, matchPayload, matchTag } from "./match.js";

export interface PredicateContext {
  /** The time (ms since the epoch) `dur` measures open sessions to: the SQL side's `now`. */
  readonly now: number;
  /**
   * The session's payloads for `~` terms: each chunk's `data` and (when not null) `sent`, and
   * each datagram's `data` and `sent`, in any order. Called once per `~` term evaluated, and
   * only for those. Without it a `~` term is false (so `!~x` is true): check `usesPayload`
   * first when payloads can be had.
   */
  readonly payloads?: (row: SessionRow) => Iterable<Uint8Array>;
}

export type SessionPredicate = (row: SessionRow, context: PredicateContext) => boolean;

/** Compiles a filter once into a predicate to call per session. */
export function toPredicate(filter: Filter): SessionPredicate {
  switch (filter.kind) {
    case "all":
      return () => true;
    case "and": {
      const operands = filter.operands.map(toPredicate);
      return (row, context) => operands.every((operand) => operand(row, context));
    }
    case "or": {
      const operands = filter.operands.map(toPredicate);
      return (row, context) => operands.some((operand) => operand(row, context));
    }
    case "not": {
      const operand = toPredicate(filter.operand);
      return (row, context) => !operand(row, context);
    }
    case "glob": {
      const { pattern } = filter;
      const columns = GLOB_COLUMNS[filter.field];
      return (row) => columns.some((column) => matchGlob(pattern, row[column]));
    }
    case "cidr": {
      const { cidr } = filter;
      const columns = CIDR_COLUMNS[filter.field];
      return (row) => columns.some((column) => inCidr(cidr, row[column]));
    }
    case "range": {
      const { min, max } = filter;
      const columns = RANGE_COLUMNS[filter.field];
      return (row) =>
        columns.some((column) => {
          const value = row[column];
          return value != null && value >= min && value <= max;
        });
    }
    case "enum": {
      const { value } = filter;
      const column = ENUM_COLUMNS[filter.field];
      return (row) => (row[column] ?? null) === value;
    }
    case "tag": {
      const { key, value } = filter;
      return (row) => matchTag(row.tags, key, value);
    }
    case "compare": {
      const measure = MEASURES[filter.measure];
      const compare = COMPARE[filter.op];
      const { amount } = filter;
      return (row, context) => compare(measure(row, context.now), amount);
    }
    case "payload": {
      const { pattern, flags } = filter;
      compileRegExp(pattern, flags);
      return (row, context) => {
        if (context.payloads === undefined) return false;
        for (const payload of context.payloads(row)) if (matchPayload(pattern, flags, payload)) return true;
        return false;
      };
    }
    default:
      return assertNever(filter);
  }
}

const MEASURES = {
  bytes: (row: SessionRow) => row.bytes_up_received + row.bytes_down_received,
  up: (row: SessionRow) => row.bytes_up_received,
  down: (row: SessionRow) => row.bytes_down_received,
  dur: (row: SessionRow, now: number) => (row.closed_at ?? now) - row.opened_at,
} satisfies Record<Measure, (row: SessionRow, now: number) => number>;

const COMPARE = {
  ">": (a: number, b: number) => a > b,
  ">=": (a: number, b: number) => a >= b,
  "<": (a: number, b: number) => a < b,
  "<=": (a: number, b: number) => a <= b,
  "=": (a: number, b: number) => a === b,
} satisfies Record<ComparisonOperator, (a: number, b: number) => boolean>;
