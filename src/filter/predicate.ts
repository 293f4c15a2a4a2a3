/**
 * A filter as a JavaScript predicate over one SessionRow: for sessions in memory (the TUI's live
 * view). It answers as `toSql` does for the same row and payloads, term by term, through the
 * same matchers (`match.ts`) and column table (`columns.ts`). `compileInterceptFilter`
 * (`intercept.ts`) evaluates intercept filters with the same code, `stage:` terms added.
 */
import type { SessionRow, TlsRow } from "../model/capture-rows.js";
import { assertNever } from "../lang/assert-never.js";
import type { ComparisonOperator, Filter, Measure, StageTerm } from "./ast.js";
import { CIDR_COLUMNS, ENUM_COLUMNS, GLOB_COLUMNS, RANGE_COLUMNS, TLS_GLOB_COLUMNS, VIA_COLUMN } from "./columns.js";
import { compileRegExp, inCidr, matchAlpnHello, matchAlpnTls, matchGlob, matchPayload, matchTag, matchVia } from "./match.js";
import { rejectStages } from "./stored-only.js";

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
  /**
   * The session's `tls` row (the reader's `tls(id)`), for `tls`, `alpn:` and `sni:` terms; called
   * only for those. Without it every session counts as having none (as in a file from before TLS
   * interception): give it whenever the rows come from a capture that may have TLS rows.
   */
  readonly tls?: (row: SessionRow) => TlsRow | undefined;
}

export type SessionPredicate = (row: SessionRow, context: PredicateContext) => boolean;

/**
 * Compiles a filter once into a predicate to call per session. Throws FilterError
 * `INTERCEPT_ONLY` for a tree with a `stage:` term (`stored-only.ts`).
 */
export function toPredicate(filter: Filter): SessionPredicate {
  rejectStages(filter);
  return compilePredicate<PredicateContext>(filter, () => {
    throw new Error("unreachable: rejectStages let a stage term through");
  });
}

/**
 * `toPredicate`'s compiler, with `stage:` terms answered by `stage` (called once per term, at
 * compile time) in a context that may carry more than PredicateContext. Inside `filter/` only.
 */
export function compilePredicate<C extends PredicateContext>(
  filter: Filter,
  stage: (term: StageTerm) => (row: SessionRow, context: C) => boolean,
): (row: SessionRow, context: C) => boolean {
  switch (filter.kind) {
    case "all":
      return () => true;
    case "and": {
      const operands = filter.operands.map((o) => compilePredicate(o, stage));
      return (row, context) => operands.every((operand) => operand(row, context));
    }
    case "or": {
      const operands = filter.operands.map((o) => compilePredicate(o, stage));
      return (row, context) => operands.some((operand) => operand(row, context));
    }
    case "not": {
      const operand = compilePredicate(filter.operand, stage);
      return (row, context) => !operand(row, context);
    }
    case "glob": {
      const { pattern } = filter;
      const columns = GLOB_COLUMNS[filter.field];
      const tlsColumn = TLS_GLOB_COLUMNS[filter.field];
      if (tlsColumn === undefined) return (row) => columns.some((column) => matchGlob(pattern, row[column]));
      return (row, context) => columns.some((column) => matchGlob(pattern, row[column])) || matchGlob(pattern, context.tls?.(row)?.[tlsColumn]);
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
    case "tls": {
      const { state } = filter;
      return (row, context) => {
        const tls = context.tls?.(row);
        if (tls === undefined) return false;
        switch (state) {
          case null:
            return true;
          case "intercepted":
            return tls.intercepted === 1 && tls.failure_code === null;
          case "passthrough":
            return tls.intercepted === 0 && tls.failure_code === null;
          case "failed":
            return tls.failure_code !== null;
          default:
            return assertNever(state);
        }
      };
    }
    case "alpn": {
      const { pattern } = filter;
      return (row, context) => {
        const t = context.tls?.(row);
        if (t === undefined) return matchAlpnHello(pattern, row.protocol, row.protocol_info);
        return matchAlpnTls(pattern, t.client_alpn, t.upstream_alpn, t.client_version, t.upstream_version, t.alpn_offered);
      };
    }
    case "via": {
      const { pattern } = filter;
      return (row) => matchVia(pattern, row[VIA_COLUMN]);
    }
    case "stage":
      return stage(filter);
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
