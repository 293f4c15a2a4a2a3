/**
 * The filter language (described in `parse.ts`).
 *
 * Parse once, then compile either way; both give the same answer for the same session:
 *
 *     const filter = parseFilter(text);                 // throws FilterError
 *     // Stored captures:
 *     registerFilterFunctions(db);                      // once per connection
 *     const { where, params } = toSql(filter, { now: Date.now() });
 *     db.prepare(`SELECT * FROM sessions WHERE ${where}`).all(...params);
 *     // Sessions in memory:
 *     const matches = toPredicate(filter);
 *     matches(row, { now: Date.now(), payloads: (row) => payloadsOf(row) });
 *
 * `usesPayload(filter)` says whether `~` terms need payloads; `formatFilter` prints a tree back
 * as canonical text; `formatFilterError` shows an error with a caret under its column.
 *
 * Intercept filters (`run --intercept`) add `stage:` terms, which stored sessions do not have
 * (`parseFilter`, `toSql` and `toPredicate` refuse them with FilterError `INTERCEPT_ONLY`):
 *
 *     const pauses = compileInterceptFilter(parseInterceptFilter(text));
 *     pauses({ stage: "request", row: sessionRowOf({ ... }) });
 */
export type {
  AlpnTerm,
  And,
  CidrField,
  CidrTerm,
  ComparisonOperator,
  CompareTerm,
  EnumTerm,
  Filter,
  GlobField,
  GlobTerm,
  MatchAll,
  Measure,
  Not,
  Or,
  PayloadTerm,
  RangeField,
  RangeTerm,
  Stage,
  StageTerm,
  TagTerm,
  Term,
  TlsTerm,
  ViaTerm,
} from "./ast.js";
export { STAGES, stageTerms, usesPayload } from "./ast.js";
export { FilterError, formatFilterError, type FilterErrorCode } from "./filter-error.js";
export { formatFilter } from "./format.js";
export { compileInterceptFilter, type InterceptCandidate, type InterceptPredicate } from "./intercept.js";
export { parseFilter, parseInterceptFilter } from "./parse.js";
export { toPredicate, type PredicateContext, type SessionPredicate } from "./predicate.js";
export { registerFilterFunctions, toSql, type SqlFilter, type SqlOptions } from "./sql.js";
