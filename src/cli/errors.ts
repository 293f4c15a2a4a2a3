/** An error meant for the person at the terminal: one line, and the exit code to leave with. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Bad options or arguments: exit code 2. */
export function usageError(message: string): CliError {
  return new CliError(message, 2);
}

/**
 * stdout cannot take more output. EPIPE means its reader went away (`socksmith show 1 | head -1`):
 * that is how a pipeline ends, so the command stops printing and leaves with status 0 and no
 * message, as `git log | head` does. Any other write error is status 1 with the code.
 */
export class OutputClosed extends CliError {
  constructor(readonly code: string) {
    super(`cannot write to stdout (${code})`, code === "EPIPE" ? 0 : 1);
    this.name = "OutputClosed";
  }
}
