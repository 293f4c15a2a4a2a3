/**
 * Loads addon files: one TypeScript (or JavaScript) file in, one validated addon out.
 *
 * `loadAddon(file, settings, version)` runs the parts, each in its own file:
 * - bundle.ts: bundles the file and its imports with esbuild and evaluates the bundle as a fresh
 *   CommonJS module with source maps (why CommonJS: see there);
 * - validate-export.ts: checks the default export against the contract in `api.ts`;
 * - addon-options.ts: resolves its options from their defaults and `--set` values;
 * - stack-frames.ts: remembers what each version used, so that `addonLocation` and
 *   `hookLocation` (re-exported here) can name the addon's own `file.ts:line:column`.
 * Every failure is an `AddonError` with a stable code and, where one is known, the 1-based
 * line and column of the cause. Nothing is cached: each call builds and evaluates anew.
 *
 * The loader does not call `onLoad` / `onDispose`; the dispatcher owns addon lifecycles.
 */
import { basename, extname, resolve } from "node:path";
import { resolveOptions } from "./addon-options.js";
import type { Addon, HookName } from "./api.js";
import { bundle, evaluate } from "./bundle.js";
import { HOOK_NAMES } from "./hook-names.js";
import { rememberInputs } from "./stack-frames.js";
import { validateExport } from "./validate-export.js";

export { AddonError } from "./addon-error.js";
export { addonLocation, hookLocation } from "./stack-frames.js";

/** One successfully loaded version of an addon file. Immutable. */
export interface LoadedAddon {
  /** `addon.name`, or the file's base name without extension. */
  readonly name: string;
  /** Absolute path of the entry file. */
  readonly file: string;
  /** The validated default export. */
  readonly addon: Addon;
  /** The hooks it defines (functions), in the order `api.ts` declares them. */
  readonly hooks: readonly HookName[];
  /** Declared defaults, overridden by `--set` values; options without either are absent. */
  readonly options: Readonly<Record<string, unknown>>;
  /** Absolute paths of every file the bundle used, the entry included: what to watch. */
  readonly inputs: readonly string[];
  /** 1 for the first load of a file, +1 per successful reload (the caller passes it). */
  readonly version: number;
}

/**
 * Bundles, evaluates and validates one addon file.
 * @param file the entry file, relative to the working directory or absolute.
 * @param settings this addon's `--set` values, option name → raw text (already split by the CLI).
 * @param version the `version` of the result (the watcher passes the running version + 1).
 * @throws AddonError for anything wrong with the addon; nothing else.
 */
export async function loadAddon(file: string, settings: Readonly<Record<string, string>> = {}, version = 1): Promise<LoadedAddon> {
  const entry = resolve(file);
  const { code, inputs } = await bundle(entry);
  const exported = evaluate(entry, code, inputs);
  const addon = await validateExport(entry, exported);
  const name = addon.name ?? basename(entry, extname(entry));
  const options = resolveOptions(entry, name, addon, settings);
  const hooks = HOOK_NAMES.filter((hook) => typeof addon[hook] === "function");

  rememberInputs(entry, inputs);

  return Object.freeze({
    name,
    file: entry,
    addon,
    hooks: Object.freeze(hooks),
    options,
    inputs: Object.freeze(inputs),
    version,
  });
}
