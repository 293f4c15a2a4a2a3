/**
 * Applies `f` to a value or to what a promise of it settles to, staying synchronous for a plain
 * value (the hook fast path: no promise and no tick when nobody answered asynchronously).
 */
import { isThenable } from "./is-thenable.js";

export function thenMaybe<T, R>(value: T | PromiseLike<T>, f: (value: T) => R | PromiseLike<R>): R | PromiseLike<R> {
  return isThenable(value) ? Promise.resolve(value).then(f) : f(value as T);
}
