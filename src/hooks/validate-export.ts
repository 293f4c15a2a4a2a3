/**
 * Checks an addon's default export against the contract in `api.ts` (esbuild does not
 * type-check): an object of hooks (functions, with a "did you mean" for a misspelt one), an
 * optional `name` and `options` specs. A failure is an AddonError (INVALID_EXPORT, UNKNOWN_HOOK)
 * at the key's line in the entry's source, when it can be found there.
 */
import { readFile } from "node:fs/promises";
import { closestMatch, editDistance } from "../lang/closest-match.js";
import { isObject } from "../lang/is-object.js";
import { AddonError } from "./addon-error.js";
import type { Addon, OptionSpec } from "./api.js";
import { HOOK_NAMES, isHookName } from "./hook-names.js";

/**
 * The validated addon of `entry` (absolute), from what evaluating it exported.
 * @throws AddonError INVALID_EXPORT or UNKNOWN_HOOK; nothing else.
 */
export async function validateExport(entry: string, exported: unknown): Promise<Addon> {
  try {
    return validate(exported);
  } catch (err) {
    if (!(err instanceof ExportProblem)) throw err;
    const source = err.key.length === 0 ? "" : await readFile(entry, "utf8").catch(() => "");
    throw new AddonError(err.code, entry, err.message, keyPosition(source, err.key));
  }
}

/** ` (did you mean X?)` for the closest of `candidates`, or nothing. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const guess = closestMatch(word, candidates);
  return guess === undefined ? "" : ` (did you mean ${guess}?)`;
}

const OPTION_TYPES = new Set(["string", "number", "boolean"]);
const SPEC_KEYS = ["type", "default", "description"];

/** A validation failure, before it knows its line: `key` is where to look (see keyPosition). */
class ExportProblem {
  constructor(
    readonly code: "INVALID_EXPORT" | "UNKNOWN_HOOK",
    readonly message: string,
    readonly key: readonly string[] = [],
  ) {}
}

/** Checks the default export against `api.ts` (esbuild does not type-check). */
function validate(exported: unknown): Addon {
  const invalid = (message: string, ...key: string[]): never => {
    throw new ExportProblem("INVALID_EXPORT", message, key);
  };
  if (exported === undefined) invalid("no default export (end the file with `export default { … } satisfies Addon`)");
  if (!isObject(exported)) invalid(`the default export must be an object of hooks, got ${kindOf(exported)}`);
  const addon = exported as Record<string, unknown>;

  for (const key of keysOf(addon)) {
    if (key === "name" || key === "options" || isHookName(key)) continue;
    if (!looksLikeHook(key)) continue; // other keys are the addon's own state and helpers
    const guess = closestMatch(key, HOOK_NAMES);
    const hint = guess === undefined ? `hooks are ${HOOK_NAMES.join(", ")}` : `did you mean ${guess}?`;
    throw new ExportProblem("UNKNOWN_HOOK", `unknown hook ${JSON.stringify(key)} (${hint})`, [key]);
  }
  for (const hook of HOOK_NAMES) {
    const value = addon[hook];
    if (value !== undefined && typeof value !== "function") invalid(`${hook} must be a function, got ${kindOf(value)}`, hook);
  }

  const name = addon.name;
  if (name !== undefined && (typeof name !== "string" || !/^[^.=\s]+$/.test(name))) {
    invalid(`name must be a non-empty string without ".", "=" or spaces (it is the ADDON in --set ADDON.OPTION=VALUE), got ${kindOf(name)}`, "name");
  }

  const options = addon.options;
  if (options !== undefined) {
    if (!isObject(options)) invalid(`options must be an object of option specs, got ${kindOf(options)}`, "options");
    for (const [option, spec] of Object.entries(options as Record<string, unknown>)) {
      const where = `options.${option}`;
      if (!/^[^=\s]+$/.test(option)) invalid(`option name ${JSON.stringify(option)} must not contain "=" or spaces`, "options");
      if (!isObject(spec)) invalid(`${where} must be { type, default?, description? }, got ${kindOf(spec)}`, "options", option);
      const s = spec as Record<string, unknown>;
      for (const key of Object.keys(s)) {
        if (!SPEC_KEYS.includes(key)) invalid(`${where}: unknown key ${JSON.stringify(key)}${didYouMean(key, SPEC_KEYS)}`, "options", option, key);
      }
      if (typeof s.type !== "string" || !OPTION_TYPES.has(s.type)) {
        invalid(`${where}.type must be "string", "number" or "boolean", got ${kindOf(s.type)}`, "options", option);
      }
      const fallback = s.default;
      if (fallback !== undefined && !fitsType(fallback, s.type as OptionSpec["type"])) {
        invalid(`${where}.default must be a ${s.type as string}, got ${kindOf(fallback)}`, "options", option, "default");
      }
      if (s.description !== undefined && typeof s.description !== "string") {
        invalid(`${where}.description must be a string, got ${kindOf(s.description)}`, "options", option, "description");
      }
    }
  }
  return addon as Addon;
}

/**
 * `onX` / `on_x`; or `on…` near a hook name ignoring case (`onrequets`); or one edit away from
 * one (`nRequest`). Not `online`, `onlyHosts`, `data` or `open`: those are the addon's own.
 */
function looksLikeHook(key: string): boolean {
  if (/^on([A-Z_$\d]|$)/.test(key)) return true;
  if (/^on/i.test(key) && closestMatch(key, HOOK_NAMES) !== undefined) return true;
  return key.length >= 5 && HOOK_NAMES.some((hook) => editDistance(key.toLowerCase(), hook.toLowerCase()) <= 1);
}

function fitsType(value: unknown, type: OptionSpec["type"]): boolean {
  return type === "number" ? typeof value === "number" && Number.isFinite(value) : typeof value === type;
}

/** Own and inherited keys (class instances keep hooks on their prototype), minus Object's. */
function keysOf(value: object): string[] {
  const keys = new Set<string>();
  for (let o: object | null = value; o !== null && o !== Object.prototype; o = Object.getPrototypeOf(o) as object | null) {
    for (const key of Object.getOwnPropertyNames(o)) if (key !== "constructor") keys.add(key);
  }
  return [...keys];
}

/**
 * Where a key of the default export is written in the entry's source, so that a validation
 * error points at it: `path` is the key and, for an option spec, the option's name inside
 * `options`. Searched textually (`key:`, `key(`, `"key":`, shorthand `key,`), starting at
 * `export default` when there is one; undefined when not found (say, spread from an import).
 */
function keyPosition(source: string, path: readonly string[]): { line: number; column: number } | undefined {
  if (path.length === 0 || source === "") return undefined;
  const start = source.search(/\bexport\s+default\b/);
  let at = -1;
  for (const from of start >= 0 ? [start, 0] : [0]) {
    at = from;
    for (const key of path) {
      const name = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const pattern = new RegExp(`(?<![\\w$.])(?:(["'])${name}\\1|${name}(?![\\w$]))\\s*(?:[:(]|[,}])`, "g");
      pattern.lastIndex = at;
      const match = pattern.exec(source);
      if (match === null) {
        at = -1;
        break;
      }
      at = match.index;
    }
    if (at >= 0) break;
  }
  if (at < 0) return undefined;
  const before = source.slice(0, at);
  const line = before.split("\n").length;
  return { line, column: at - before.lastIndexOf("\n") };
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === "object") return "an object";
  if (typeof value === "function") return "a function";
  if (typeof value === "undefined") return "undefined";
  return `${typeof value} ${String(value)}`;
}
