/**
 * The one rule for `stage:` terms outside intercept filters: a stored session (a capture's row, a
 * session in the TUI list, a request decided by `--route`) is at no stage, so the term has no
 * meaning there. `parseFilter` refuses it at its column; `toSql` and `toPredicate` refuse a tree
 * that holds one (built by hand, or parsed by `parseInterceptFilter`) with the same error, its
 * caret placed in the tree's canonical text.
 */
import { stageTerms, type Filter } from "./ast.js";
import { FilterError } from "./filter-error.js";
import { formatFilterLocating } from "./format.js";

export const INTERCEPT_ONLY_MESSAGE = "stage: applies to --intercept filters only";

/** Throws FilterError `INTERCEPT_ONLY` at the first `stage:` term of the tree, if it has one. */
export function rejectStages(filter: Filter): void {
  const [first] = stageTerms(filter);
  if (first === undefined) return;
  const { text, column } = formatFilterLocating(filter, first);
  throw new FilterError("INTERCEPT_ONLY", INTERCEPT_ONLY_MESSAGE, text, column ?? 1);
}
