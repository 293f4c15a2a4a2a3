/** `socksmith addon check FILE`: bundle and validate an addon without starting the proxy. */
import { Command } from "commander";
import { AddonError, loadAddon } from "../../hooks/loader.js";
import { CliError } from "../errors.js";
import { describeAddonError, parseSettings } from "../addons.js";
import type { Terminal } from "../proxy.js";

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

export function addonCommand(terminal: Terminal): Command {
  const addon = new Command("addon").description("work with addon files").exitOverride();
  addon
    .command("check")
    .description("bundle and validate an addon; print the hooks and options it defines")
    .argument("<file>", "the addon's TypeScript (or JavaScript) file")
    .option("--set <addon.option=value>", "check option values too, as `run` would apply them", collect)
    .action(async (file: string, raw: { set?: string[] }) => {
      const settings = parseSettings(raw.set ?? []);
      try {
        const stem = file.replace(/^.*[\\/]/, "").replace(/\.[^.]+$/, "");
        const loaded = await loadAddon(file, settings.get(stem));
        const options = Object.entries(loaded.options).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
        terminal.out(`ok: ${loaded.name} (${loaded.file})`);
        terminal.out(`hooks: ${loaded.hooks.join(", ") || "none"}`);
        if (options.length > 0) terminal.out(`options: ${options.join(", ")}`);
        if (loaded.inputs.length > 1) terminal.out(`files: ${loaded.inputs.join(", ")}`);
      } catch (err) {
        if (err instanceof AddonError) throw new CliError(describeAddonError(err), 1);
        throw err;
      }
    });
  return addon;
}
