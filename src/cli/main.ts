/** The socksmith command line: builds the program, runs it, maps errors to exit codes. */
import { Command, CommanderError } from "commander";
import type { SocksEngine } from "../engine/index.js";
import { CliError } from "./errors.js";
import { runCommand, type RunOptions, type Started, type Terminal } from "./commands/run.js";

const VERSION = "0.1.0";

export function buildProgram(terminal: Terminal, started: Started): Command {
  const program = new Command("socksmith")
    .description("A programmable SOCKS4/4a/5 proxy: watch, change and replay what apps send")
    .version(VERSION)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });
  program.addCommand(runCommand(terminal, started).exitOverride(), { isDefault: true });
  return program;
}

/** Waits for SIGINT/SIGTERM, then shuts the proxy down gracefully; a second signal forces it. */
function waitForSignals(terminal: Terminal): Started {
  return (engine: SocksEngine, options: RunOptions) =>
    new Promise<void>((resolve) => {
      let stopping = false;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (stopping) {
          terminal.err(`${signal} again: closing ${engine.sessionCount} sessions now`);
          engine.destroyAll();
          return;
        }
        stopping = true;
        const open = engine.sessionCount;
        terminal.err(
          open === 0
            ? `${signal}: stopping`
            : `${signal}: no longer accepting; waiting up to ${options.graceMs / 1000}s for ${open} open session${open === 1 ? "" : "s"} (again to force)`,
        );
        engine.stop(options.graceMs).then(() => {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
          resolve();
        });
      };
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
    });
}

export async function main(argv: string[]): Promise<number> {
  const terminal: Terminal = {
    out: (line) => process.stdout.write(line + "\n"),
    err: (line) => process.stderr.write(line + "\n"),
  };
  const program = buildProgram(terminal, waitForSignals(terminal));
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; every usage error has already been printed on one line.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof CliError) {
      terminal.err(`socksmith: ${err.message}`);
      return err.exitCode;
    }
    terminal.err(`socksmith: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
