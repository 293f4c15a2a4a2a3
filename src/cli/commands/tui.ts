/** `socksmith tui [FILE]`: browse a capture file in the terminal UI (read-only). */
import { Command } from "commander";
import { openReader } from "../capture-file.js";
import { CliError } from "../errors.js";
import { loadTui } from "../load-tui.js";

export function tuiCommand(): Command {
  return new Command("tui")
    .description("browse a capture file in the terminal UI (read-only)")
    .argument("[file]", "capture file", "socksmith.db")
    .option("--follow", "select the newest session as another process adds them")
    .action(async (file: string, raw: { follow?: boolean }) => {
      if (process.stdin.isTTY !== true || process.stdout.isTTY !== true) {
        throw new CliError("tui needs a terminal; use `socksmith sessions` or `socksmith show` in scripts", 2);
      }
      const reader = openReader(file);
      try {
        // Ink takes about half a second to load: only the commands that draw pay for it.
        const { browseWithTui } = await loadTui();
        await browseWithTui(reader, raw.follow === true);
      } finally {
        reader.close();
      }
    });
}
