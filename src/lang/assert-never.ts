/**
 * The exhaustiveness check of every `switch` over a union: `default: return
 * assertNever(x)` compiles only while every case is handled, and throws if a value the types
 * rule out turns up at run time (a bug of ours, never input). No imports: any layer may use it.
 */
export function assertNever(value: never, what = "value"): never {
  let shown: string;
  try {
    shown = JSON.stringify(value) ?? String(value);
  } catch {
    shown = String(value as unknown);
  }
  throw new Error(`unexpected ${what} ${shown}`);
}
