/**
 * Figures a torture test measured (counts, MiB, ratios), attached to the test's task so the
 * figures reporter (torture/reporter.ts) prints them in the run's summary.
 */
declare module "vitest" {
  interface TaskMeta {
    /** Name → value, printed in insertion order. */
    figures?: Record<string, string | number>;
  }
}

/** The part of a vitest test context this needs. */
export interface HasTask {
  readonly task: { readonly meta: { figures?: Record<string, string | number> } };
}

/** Adds figures to the test's record (numbers are rounded to 2 decimals when printed). */
export function figures(ctx: HasTask, values: Record<string, string | number>): void {
  ctx.task.meta.figures = { ...ctx.task.meta.figures, ...values };
}

export function mib(bytes: number): number {
  return Math.round((bytes / (1024 * 1024)) * 10) / 10;
}
