/** The socksmith command line: builds the program, runs it, maps errors to exit codes. */
import { Command, CommanderError } from "commander";
import { CliError, OutputClosed } from "./errors.js";
import { runCommand } from "./commands/run.js";
import type { RunningProxy, Started, Terminal } from "./proxy.js";
import { addonCommand } from "./commands/addon.js";
import { sessionsCommand } from "./commands/sessions.js";
import { showCommand } from "./commands/show.js";
import { exportCommand } from "./commands/export.js";
import { pruneCommand } from "./commands/prune.js";
import { tuiCommand } from "./commands/tui.js";
import { replayCommand } from "./commands/replay.js";
import { caCommand } from "./commands/ca.js";
import { VERSION } from "./version.js";

export function buildProgram(terminal: Terminal, started: Started): Command {
  const program = new Command("socksmith")
    .description("A programmable SOCKS4/4a/5 proxy: watch, change and replay what apps send")
    .version(VERSION)
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });
  program.addCommand(runCommand(terminal, started).exitOverride(), { isDefault: true });
  program.addCommand(tuiCommand().exitOverride());
  program.addCommand(sessionsCommand(terminal).exitOverride());
  program.addCommand(showCommand(terminal).exitOverride());
  program.addCommand(exportCommand(terminal).exitOverride());
  program.addCommand(pruneCommand(terminal).exitOverride());
  program.addCommand(replayCommand(terminal).exitOverride());
  program.addCommand(addonCommand(terminal).exitOverride());
  program.addCommand(caCommand(terminal).exitOverride());
  return program;
}

/**
 * SIGINT/SIGTERM handling, installed before anything listens (a signal that arrives during
 * start-up is kept and acted on once the proxy is up): the first signal stops accepting and lets
 * open sessions finish within the grace period; a second one closes them at once.
 */
class Shutdown {
  private engine: RunningProxy | undefined;
  private graceMs = 0;
  private pending: NodeJS.Signals | undefined;
  private stopping = false;
  private done: (() => void) | undefined;

  constructor(private readonly terminal: Terminal) {
    process.on("SIGINT", this.onSignal);
    process.on("SIGTERM", this.onSignal);
  }

  /** Resolves once the engine has stopped after a signal. */
  readonly attach: Started = (engine, options) =>
    new Promise<void>((resolve, reject) => {
      this.engine = engine;
      this.graceMs = options.graceMs;
      this.done = resolve;
      // The proxy can also decide to stop by itself (capture failed with --on-capture-error stop).
      void engine.fatal.then((error) => {
        if (this.stopping) return;
        this.stopping = true;
        engine.destroyAll();
        engine.stop(0).then(
          () => reject(error),
          () => reject(error),
        );
      });
      if (this.pending !== undefined) this.onSignal(this.pending);
    });

  dispose(): void {
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
  }

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    const engine = this.engine;
    if (engine === undefined) {
      this.pending = signal;
      return;
    }
    if (this.stopping) {
      this.terminal.err(`${signal} again: closing ${engine.sessionCount} sessions now`);
      engine.destroyAll();
      return;
    }
    this.stopping = true;
    const open = engine.sessionCount;
    this.terminal.err(
      open === 0
        ? `${signal}: stopping`
        : `${signal}: no longer accepting; waiting up to ${this.graceMs / 1000}s for ${open} open session${open === 1 ? "" : "s"} (again to force)`,
    );
    engine.stop(this.graceMs).then(() => this.done?.());
  };
}

/**
 * Writes to stdout once its reader may be gone. The 'error' event (EPIPE when the reader closed
 * the pipe) comes after the failed write, so `errored` is checked before each line as well.
 * - `run` (and the TUI) keep serving and drop their stdout lines: a proxy does not stop because a
 *   log viewer went away. One notice goes to stderr.
 * - Every other command stops at the next line with OutputClosed (status 0 for EPIPE).
 */
class Stdout {
  /** Set when the command that runs is not `run`/`tui` (commander's preAction). */
  stopWhenClosed = false;
  private closed: string | undefined;

  constructor(private readonly stderr: (line: string) => void) {
    process.stdout.on("error", (err: NodeJS.ErrnoException) => this.close(err.code ?? "EIO"));
  }

  readonly write = (line: string): void => {
    const errored = process.stdout.errored as NodeJS.ErrnoException | null;
    if (this.closed === undefined && errored !== null) this.close(errored.code ?? "EIO");
    if (this.closed !== undefined) {
      if (this.stopWhenClosed) throw new OutputClosed(this.closed);
      return;
    }
    process.stdout.write(`${line}\n`);
  };

  private close(code: string): void {
    if (this.closed !== undefined) return;
    this.closed = code;
    if (!this.stopWhenClosed) this.stderr(`socksmith: stdout closed (${code}); its lines are no longer printed`);
  }
}

export async function main(argv: string[]): Promise<number> {
  const toStderr = (line: string): void => void process.stderr.write(`${line}\n`);
  const stdout = new Stdout(toStderr);
  const terminal: Terminal = { out: stdout.write, err: toStderr };
  const shutdown = new Shutdown(terminal);
  const program = buildProgram(terminal, shutdown.attach);
  program.hook("preAction", (_program, action) => {
    stdout.stopWhenClosed = action.name() !== "run" && action.name() !== "tui";
  });
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof OutputClosed && err.exitCode === 0) return 0;
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
  } finally {
    shutdown.dispose();
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
