/**
 * An addon's option values: its declared defaults, overridden by `--set ADDON.OPTION=VALUE` texts
 * parsed to the declared type. A failure is an AddonError BAD_OPTION (an undeclared option, with
 * a "did you mean"; a value that is not of the type).
 */
import { assertNever } from "../lang/assert-never.js";
import { AddonError } from "./addon-error.js";
import type { Addon, OptionSpec } from "./api.js";
import { didYouMean } from "./validate-export.js";

/**
 * The values of `addon`'s options: defaults, then `settings` (option name → raw text). Options
 * with neither are absent. Frozen.
 * @throws AddonError BAD_OPTION
 */
export function resolveOptions(entry: string, name: string, addon: Addon, settings: Readonly<Record<string, string>>): Readonly<Record<string, unknown>> {
  const specs = (addon.options ?? {}) as Readonly<Record<string, OptionSpec>>;
  const declared = Object.keys(specs);
  const values = new Map<string, unknown>();
  for (const option of declared) {
    const fallback = specs[option]?.default;
    if (fallback !== undefined) values.set(option, fallback);
  }
  for (const [option, raw] of Object.entries(settings)) {
    const spec = Object.hasOwn(specs, option) ? specs[option] : undefined;
    if (spec === undefined) {
      const known = declared.length === 0 ? `; it declares no options` : `${didYouMean(option, declared)} (options: ${declared.join(", ")})`;
      throw new AddonError("BAD_OPTION", entry, `unknown option ${JSON.stringify(option)} for addon ${name}${known}`);
    }
    const value = parseOption(spec.type, raw);
    if (value === undefined) {
      const expected = spec.type === "boolean" ? "true/false, 1/0 or yes/no" : "a finite number";
      throw new AddonError("BAD_OPTION", entry, `option ${name}.${option} must be ${expected}, got ${JSON.stringify(raw)}`);
    }
    values.set(option, value);
  }
  // fromEntries defines properties: an option named "__proto__" stays an option.
  return Object.freeze(Object.fromEntries(values));
}

/** The typed value of a `--set` text, or undefined when it does not parse. */
function parseOption(type: OptionSpec["type"], raw: string): string | number | boolean | undefined {
  switch (type) {
    case "string":
      return raw;
    case "number": {
      const n = raw.trim() === "" ? Number.NaN : Number(raw);
      return Number.isFinite(n) ? n : undefined;
    }
    case "boolean": {
      const word = raw.trim().toLowerCase();
      if (word === "true" || word === "1" || word === "yes") return true;
      if (word === "false" || word === "0" || word === "no") return false;
      return undefined;
    }
    default:
      return assertNever(type, "option type");
  }
}
