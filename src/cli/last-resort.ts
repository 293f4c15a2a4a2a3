/**
 * The last line of the trust rule "nothing takes the process down" (docs/architecture.md, "Trust rules") for what no wrapper can
 * catch: an exception thrown from an addon's own timer or event handler, or a promise an addon
 * rejected and never awaited, reaches the process as `uncaughtException` / `unhandledRejection`,
 * and Node's default is to end the process (and every session with it).
 *
 * While the proxy runs, both are caught here instead: reported with the addon and its file:line
 * when the stack names one of the loaded addons' files (otherwise as a socksmith bug, with the
 * stack), and the proxy goes on. Reports are rate-limited (an addon timer that throws every
 * millisecond must not flood the log): at most `BURST` per `WINDOW_MS`, then one count.
 */

export interface LastResortReport {
  readonly kind: "exception" | "rejection";
  /** The addon whose code threw, when its stack shows one; with its file:line:column. */
  readonly addon?: { readonly name: string; readonly location: string };
  readonly message: string;
  /** The stack, for errors not attributed to an addon (a socksmith bug to report). */
  readonly stack?: string;
}

export interface LastResortOptions {
  /** The addon (name, file:line) that `error` came from, if any. */
  attribute(error: unknown): { name: string; location: string } | undefined;
  report(report: LastResortReport): void;
  /** Reports that were not shown because of the rate limit (called once per window). */
  suppressed(count: number): void;
}

const BURST = 10;
const WINDOW_MS = 10_000;

/** Installs both handlers; returns a function that removes them. */
export function installLastResort(options: LastResortOptions): () => void {
  let windowStart = 0;
  let shown = 0;
  let hidden = 0;
  const handle = (kind: LastResortReport["kind"], error: unknown): void => {
    try {
      const now = Date.now();
      if (now - windowStart >= WINDOW_MS) {
        if (hidden > 0) options.suppressed(hidden);
        windowStart = now;
        shown = 0;
        hidden = 0;
      }
      if (shown >= BURST) {
        hidden++;
        return;
      }
      shown++;
      const addon = options.attribute(error);
      const message = error instanceof Error ? `${error.name === "Error" ? "" : `${error.name}: `}${error.message}` : safeText(error);
      const stack = addon === undefined && error instanceof Error ? error.stack : undefined;
      options.report({ kind, message, ...(addon === undefined ? {} : { addon }), ...(stack === undefined ? {} : { stack }) });
    } catch {
      // Reporting must not throw from here: that would end the process after all.
    }
  };
  const onException = (error: unknown): void => handle("exception", error);
  const onRejection = (reason: unknown): void => handle("rejection", reason);
  process.on("uncaughtException", onException);
  process.on("unhandledRejection", onRejection);
  return () => {
    process.off("uncaughtException", onException);
    process.off("unhandledRejection", onRejection);
  };
}

function safeText(value: unknown): string {
  try {
    return typeof value === "string" ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    return "a value that cannot be shown";
  }
}
