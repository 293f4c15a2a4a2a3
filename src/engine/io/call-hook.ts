/**
 * Calls a HookRunner method and continues with its answer: at once when the answer is
 * synchronous (the fast path), or when its promise settles. A throw or a rejection is reported
 * through `failed` and counts as "no opinion" (undefined). Returns true when the answer is still
 * pending, so the caller can stop reading until `then` runs.
 */
import { isThenable } from "../../lang/is-thenable.js";
export function callHook<T>(call: () => T | PromiseLike<T>, failed: (err: unknown) => void, then: (answer: T | undefined) => void): boolean {
  let answer: T | PromiseLike<T>;
  try {
    answer = call();
  } catch (err) {
    failed(err);
    then(undefined);
    return false;
  }
  if (isThenable(answer)) {
    (answer as PromiseLike<T>).then(then, (err: unknown) => {
      failed(err);
      then(undefined);
    });
    return true;
  }
  then(answer as T);
  return false;
}
