/**
 * Whether a value is a thenable, for code that stays synchronous while an answer is (the engine's
 * hook calls, the dispatcher, server replay). No imports: any layer may use it.
 */

/**
 * True for an object or function with a callable `then` (a promise or any Promise/A+ thenable).
 * Never throws: a `then` that cannot be read (a throwing getter, a revoked proxy) counts as a
 * thenable, so that such a value is never mistaken for a plain answer.
 */
export function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  if (value === null || (typeof value !== "object" && typeof value !== "function")) return false;
  try {
    return typeof (value as { then?: unknown }).then === "function";
  } catch {
    return true;
  }
}
