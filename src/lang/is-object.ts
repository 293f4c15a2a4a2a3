/** A plain check every layer may use (no imports). */

/** Whether `value` is an object whose keys can be read as a record: not null, not an array, not a function. */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
