/** What is wrong with a filter, where, and how to show it. */

/** Stable codes for bad filters. */
export type FilterErrorCode =
  /** A `name:` whose name is no field, a comparison on a name that is none, `bytes:` for `bytes>`. */
  | "UNKNOWN_FIELD"
  /** Nothing where a value, size, duration or regular expression must be. */
  | "EXPECTED_VALUE"
  /** A value the field does not take: an unknown status, a port out of range, a bad size. */
  | "BAD_VALUE"
  /** A `~` pattern JavaScript rejects, or an unknown flag before its quote. */
  | "BAD_REGEX"
  /** An operator with nothing to apply to: `a |`, `!`, `()`, `& a`. */
  | "EXPECTED_TERM"
  /** A `)` without its `(`, or a `(` never closed. */
  | "UNBALANCED"
  /** A `"` never closed. */
  | "UNTERMINATED_QUOTE"
  /** Two terms run together with nothing between them: `host:a(b)`, `~"a"b`. */
  | "EXPECTED_OPERATOR"
  /** More than 100 `!` and `(` nested. */
  | "TOO_DEEP"
  /** A `stage:` term in a filter over stored sessions: only an intercept filter has stages. */
  | "INTERCEPT_ONLY";

/**
 * A filter that does not parse (`parseFilter` throws nothing else), or, code `INTERCEPT_ONLY`, a
 * tree with a `stage:` term given to `toSql` or `toPredicate`.
 */
export class FilterError extends Error {
  override readonly name = "FilterError";
  constructor(
    readonly code: FilterErrorCode,
    message: string,
    /** The whole filter text. */
    readonly filter: string,
    /**
     * 1-based, in UTF-16 code units, of the offending character; `filter.length + 1` when
     * something is missing at the end.
     */
    readonly column: number,
  ) {
    super(message);
  }
}

/**
 * The filter on one line, a caret under the column on the next, then the message:
 *
 *     port:80 hots:x
 *             ^
 *     unknown field 'hots' — did you mean 'host'?
 *
 * The text is the error's own `filter`, or `text` when given (it must be the text parsed).
 * Control characters (tabs, newlines) print as spaces so the caret stays under its character.
 */
export function formatFilterError(error: FilterError): string;
export function formatFilterError(text: string, error: FilterError): string;
export function formatFilterError(first: FilterError | string, second?: FilterError): string {
  const error = typeof first === "string" ? second! : first;
  const text = typeof first === "string" ? first : first.filter;
  const line = text.replace(/[\u0000-\u001f\u007f]/g, " ");
  return `${line}\n${" ".repeat(error.column - 1)}^\n${error.message}`;
}
