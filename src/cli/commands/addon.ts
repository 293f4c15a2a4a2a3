/** `socksmith addon check FILE`: bundle and validate an addon without starting the proxy. */
import { Command } from "commander";
import { AddonError, loadAddon } from "../../hooks/loader.js";
import { CliError } from "../errors.js";
import { describeAddonError, parseSettings } from "../addons.js";
import type { Terminal } from "../proxy.js";
import { typeCheckAddon } from "../addon-typecheck.js";

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function addonCommand(terminal: Terminal): Command {
  const addon = new Command("addon").description("work with addon files").exitOverride();
  addon
    .command("check")
    .description("bundle and validate an addon, type-check its answers when TypeScript is installed; print its hooks and options")
    .argument("<file>", "the addon's TypeScript (or JavaScript) file")
    .option("--set <addon.option=value>", "check option values too, as `run` would apply them", collect)
    .option("--no-types", "skip the TypeScript check")
    .action(async (file: string, raw: { set?: string[]; types: boolean }) => {
      const settings = parseSettings(raw.set ?? []);
      try {
        const stem = file.replace(/^.*[\\/]/, "").replace(/\.[^.]+$/, "");
        const loaded = await loadAddon(file, settings.get(stem));
        const options = Object.entries(loaded.options).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
        terminal.out(`ok: ${loaded.name} (${loaded.file})`);
        terminal.out(`hooks: ${loaded.hooks.join(", ") || "none"}`);
        if (options.length > 0) terminal.out(`options: ${options.join(", ")}`);
        if (loaded.inputs.length > 1) terminal.out(`files: ${loaded.inputs.join(", ")}`);
        if (!raw.types) return;
        // Answers of the wrong shape are hook failures at run time (reported, then ignored);
        // the compiler sees many of them now.
        const types = await typeCheckAddon(loaded.file);
        if (types.kind === "unavailable") terminal.out(`types: not checked: ${types.reason}`);
        else if (types.kind === "failed") terminal.err(`warning: types: TypeScript ${types.version} could not check the addon: ${types.reason}`);
        else {
          terminal.out(
            `types: checked with TypeScript ${types.version}: ${types.problems.length === 0 ? "no problems" : `${types.problems.length} problem${types.problems.length === 1 ? "" : "s"}`}`,
          );
          for (const p of types.problems) terminal.err(`warning: ${p.file}:${p.line}:${p.column}: ${p.message}`);
        }
      } catch (err) {
        if (err instanceof AddonError) throw new CliError(describeAddonError(err), 1);
        throw err;
      }
    });
  return addon;
}
