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
