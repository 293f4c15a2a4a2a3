/**
 * Loads addon files: one TypeScript (or JavaScript) file in, one validated addon out.
 *
 * `loadAddon(file, settings, version)`:
 * - bundles the file and everything it imports with esbuild, in-process (packages stay
 *   external: `require`d from the addon's own folder at run time; `import type` is erased, so
 *   `import type { Addon } from "socksmith/addon"` works from any folder);
 * - evaluates the bundle as a fresh CommonJS module, with source maps on, so stack traces name
 *   the addon's own `file.ts:line:column`;
 * - validates the default export against the contract in `api.ts` and resolves its options.
 * Every failure is an `AddonError` with a stable code and, where one is known, the 1-based
 * line and column of the cause. Nothing is cached: each call builds and evaluates anew, and a
 * version that is no longer referenced is garbage-collected whole (hot reload depends on it).
 *
 * The loader does not call `onLoad` / `onDispose`; the dispatcher owns addon lifecycles.
 *
 * Why CommonJS through `Module.prototype._compile` (research/ecosystem.md §3): a cache-busting
 * ESM `import()` keeps every version in Node's module map (~130 KB per reload, never freed),
 * and `vm` scripts get no source maps. `_compile` on a fresh `Module` is both leak-free and
 * source-mapped. It is an undocumented internal; it stays behind `loadAddon` and its tests.
 * Consequence for authors: no top-level `await` (esbuild says so, as a BUNDLE_FAILED).
 */
import { build, type BuildFailure, type Message } from "esbuild";
import Module, { createRequire, findSourceMap } from "node:module";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname, extname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { assertNever } from "../lang/assert-never.js";
import { closestMatch, editDistance } from "../lang/closest-match.js";
import type { Addon, HookName, OptionSpec } from "./api.js";
import { HOOK_NAMES, isHookName } from "./hook-names.js";

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
 * Why an addon could not be loaded:
 * - BUNDLE_FAILED: the file is missing, or esbuild could not bundle it (syntax error,
 *   unresolvable import, top-level await). `file` is the file at fault, possibly an import.
 * - LOAD_FAILED: evaluating the bundle threw; `file`/`line`/`column` are the addon's own frame.
 * - INVALID_EXPORT: no default export, not an object, a hook that is not a function, or a
 *   `name` / `options` of the wrong shape.
 * - UNKNOWN_HOOK: a key that looks like a hook but is none (`onRequets`); the message says
 *   which hook was probably meant.
 * - BAD_OPTION: a `--set` value for an option the addon does not declare, or of the wrong type.
 * `message` never repeats the location: print `file:line:column: message`.
 */
export class AddonError extends Error {
  override readonly name = "AddonError";
  readonly code: "BUNDLE_FAILED" | "LOAD_FAILED" | "INVALID_EXPORT" | "UNKNOWN_HOOK" | "BAD_OPTION";
  /** Absolute path of the file at fault. */
  readonly file: string;
  /** 1-based, when known. */
  readonly line?: number;
  /** 1-based, in characters (UTF-16 units, as editors and tsc count), when known. */
  readonly column?: number;

  constructor(code: AddonError["code"], file: string, message: string, where?: { line?: number; column?: number; cause?: unknown }) {
    super(message, where?.cause === undefined ? undefined : { cause: where.cause });
    this.code = code;
    this.file = file;
    if (where?.line !== undefined) this.line = where.line;
    if (where?.column !== undefined) this.column = where.column;
  }
}

/** Node's CommonJS internals used here (undocumented; see the file comment). */
type CompilableModule = Module & {
  filename: string;
  paths: string[];
  require: NodeJS.Require;
  exports: unknown;
  _compile(code: string, filename: string): unknown;
};
const ModuleInternals = Module as unknown as { _nodeModulePaths(dir: string): string[] };

/**
 * Keeps each evaluated module alive as long as its addon (or one of its hooks) is. Node keys
 * its source-map cache by the Module object, which nothing else references once evaluated: a
 * garbage collection would silently turn `a.ts:5:11` back into `a.ts.3.js:27:11` in the stack
 * traces of a still-running addon.
 */
const modules = new WeakMap<object, Module>();

/**
 * Each evaluated addon's generated code and file name, so that `hookLocation` can find where a
 * hook is written. Weak: it goes with the addon version.
 */
const generatedOf = new WeakMap<object, { readonly code: string; readonly generated: string }>();
/** Positions found by `hookLocation`, per hook function. */
const hookPositions = new WeakMap<object, string | null>();

/** Files each entry's bundles have used (the union over versions), for `addonLocation`. */
const inputsByEntry = new Map<string, Set<string>>();

/**
 * Each evaluation gets its own generated file name, `<entry>.<n>.js`, in the entry's folder
 * (so the map's relative source paths resolve the same). Node looks source maps up by file
 * name, and with one shared name the old version's stack traces would be mapped with the new
 * version's map (wrong lines while both run, during a reload).
 */
let evaluations = 0;
const GENERATED = /^(.*)\.\d+\.js$/;

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
  let addon: Addon;
  try {
    addon = validate(exported);
  } catch (err) {
    if (!(err instanceof ExportProblem)) throw err;
    const source = err.key.length === 0 ? "" : await readFile(entry, "utf8").catch(() => "");
    throw new AddonError(err.code, entry, err.message, keyPosition(source, err.key));
  }
  const name = addon.name ?? basename(entry, extname(entry));
  const options = resolveOptions(entry, name, addon, settings);
  const hooks = HOOK_NAMES.filter((hook) => typeof addon[hook] === "function");

  let known = inputsByEntry.get(entry);
  if (known === undefined) inputsByEntry.set(entry, (known = new Set()));
  for (const input of inputs) known.add(input);

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

/**
 * The addon's own position in an error's stack: the first frame in a file the addon's bundle
 * used (the entry or one of its imports), as `/abs/path/file.ts:line:column` (1-based), or
 * undefined when no frame is the addon's (a non-Error, a throw in a package it imports, …).
 * Works whether or not Node's source-map stack rewriting is active (test runners replace it):
 * generated frames are mapped back here.
 */
export function addonLocation(error: unknown, file: string): string | undefined {
  const entry = resolve(file);
  const position = addonFrame(error, entry, inputsByEntry.get(entry) ?? new Set([entry]));
  return position === undefined ? undefined : `${position.file}:${position.line}:${position.column}`;
}

/**
 * Where a hook of a loaded addon is defined, as `/abs/path/file.ts:line:column` (1-based): for
 * failures that have no stack of the addon's own (an invalid answer, a timeout). Found by
 * locating the function's source text (`Function.prototype.toString` gives it exactly) in the
 * generated bundle and mapping that position through the bundle's source map. Undefined for an
 * addon the loader did not load, or a hook defined outside the bundle.
 */
export function hookLocation(addon: object, hook: HookName): string | undefined {
  const fn: unknown = (addon as Record<string, unknown>)[hook];
  const source = generatedOf.get(addon);
  if (typeof fn !== "function" || source === undefined) return undefined;
  const known = hookPositions.get(fn);
  if (known !== undefined) return known ?? undefined;
  let found: string | undefined;
  const at = source.code.indexOf(Function.prototype.toString.call(fn));
  if (at >= 0) {
    const before = source.code.slice(0, at);
    const line = before.split("\n").length;
    const mapped = mapGenerated({ file: source.generated, line, column: at - before.lastIndexOf("\n") });
    if (mapped !== undefined) found = `${mapped.file}:${mapped.line}:${mapped.column}`;
  }
  hookPositions.set(fn, found ?? null);
  return found;
}

// ---------------------------------------------------------------------------------------------
// Bundling and evaluation
// ---------------------------------------------------------------------------------------------

async function bundle(entry: string): Promise<{ code: string; inputs: string[] }> {
  try {
    if (!(await stat(entry)).isFile()) throw new AddonError("BUNDLE_FAILED", entry, "not a file");
  } catch (err) {
    if (err instanceof AddonError) throw err;
    const reason = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : `cannot read: ${(err as Error).message}`;
    throw new AddonError("BUNDLE_FAILED", entry, reason, { cause: err });
  }
  const workingDir = process.cwd();
  try {
    const result = await build({
      entryPoints: [entry],
      // The source map's paths are relative to the output file: put it beside the entry.
      outfile: `${entry}.js`,
      absWorkingDir: workingDir,
      bundle: true,
      write: false,
      platform: "node",
      format: "cjs",
      target: "node20",
      packages: "external",
      sourcemap: "inline",
      // Stack traces need the mappings, not the sources; this halves what each version keeps.
      sourcesContent: false,
      metafile: true,
      logLevel: "silent",
    });
    const code = result.outputFiles[0]?.text ?? "";
    // Inputs in namespaces other than the file system (none today) are not files to watch.
    const inputs = Object.keys(result.metafile.inputs)
      .filter((input) => !/^[a-z][\w-]+:/.test(input))
      .map((input) => resolve(workingDir, input));
    return { code, inputs };
  } catch (err) {
    throw bundleError(entry, workingDir, err);
  }
}

function bundleError(entry: string, workingDir: string, err: unknown): AddonError {
  const errors = (err as Partial<BuildFailure>).errors;
  const first: Message | undefined = Array.isArray(errors) ? errors[0] : undefined;
  if (first === undefined) return new AddonError("BUNDLE_FAILED", entry, err instanceof Error ? err.message : String(err), { cause: err });
  const more = errors!.length > 1 ? ` (and ${errors!.length - 1} more error${errors!.length > 2 ? "s" : ""})` : "";
  const location = first.location;
  if (location === null) return new AddonError("BUNDLE_FAILED", entry, first.text + more, { cause: err });
  return new AddonError("BUNDLE_FAILED", resolve(workingDir, location.file), first.text + more, {
    line: location.line,
    column: characterColumn(location.lineText, location.column),
    cause: err,
  });
}

/** esbuild's columns are 0-based UTF-8 byte offsets; editors count 1-based characters. */
function characterColumn(lineText: string, byteColumn: number): number {
  return Buffer.from(lineText, "utf8").subarray(0, byteColumn).toString("utf8").length + 1;
}

/** Runs the bundle as a fresh CommonJS module; returns the addon (its default export). */
function evaluate(entry: string, code: string, inputs: readonly string[]): unknown {
  // Idempotent and cheap; stack traces then show `file.ts:line:col`, including inside `_compile`.
  process.setSourceMapsEnabled(true);
  const generated = `${entry}.${++evaluations}.js`;
  const mod = new Module(generated) as CompilableModule;
  mod.filename = generated;
  // Packages resolve from the addon's folder upward, as they would for a file there.
  mod.paths = ModuleInternals._nodeModulePaths(dirname(entry));
  // A separate require: packages first required from here record the throwaway module made by
  // createRequire as their `parent`, not this one (which would then outlive its version).
  mod.require = createRequire(entry);
  try {
    mod._compile(code, generated);
  } catch (err) {
    const at = addonFrame(err, entry, new Set(inputs));
    throw new AddonError("LOAD_FAILED", at?.file ?? entry, `threw while loading: ${describeThrown(err)}${importHint(err)}`, {
      ...(at === undefined ? {} : { line: at.line, column: at.column }),
      cause: err,
    });
  }
  const exports = mod.exports;
  // esbuild marks ESM entries with `__esModule`; a CommonJS entry's module.exports is the addon.
  // An empty file bundles to an empty module (`{}` without the marker): that is no default
  // export, not an addon without hooks (a deny-all addon read half-written must not load as
  // one that lets everything through).
  const empty = isObject(exports) && exports["__esModule"] !== true && Object.keys(exports).length === 0;
  const exported = empty ? undefined : isObject(exports) && exports["__esModule"] === true ? exports["default"] : exports;
  if (isObject(exported) || typeof exported === "function") {
    modules.set(exported, mod);
    generatedOf.set(exported, { code, generated });
    for (const hook of HOOK_NAMES) {
      const value: unknown = (exported as Record<string, unknown>)[hook];
      if (typeof value === "function") modules.set(value, mod);
    }
  }
  return exported;
}

/** `import { Addon } from "socksmith/addon"` without `type` is kept (verbatimModuleSyntax). */
function importHint(err: unknown): string {
  return err instanceof Error && err.message.includes("socksmith/addon")
    ? ' (import the addon types with `import type { Addon } from "socksmith/addon"`)'
    : "";
}

function describeThrown(err: unknown): string {
  if (err instanceof Error) return err.message === "" ? err.name : `${err.name === "Error" ? "" : `${err.name}: `}${err.message}`;
  try {
    return typeof err === "string" ? err : (JSON.stringify(err) ?? String(err));
  } catch {
    return String(err);
  }
}

// ---------------------------------------------------------------------------------------------
// Stack frames
// ---------------------------------------------------------------------------------------------

interface Position {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

/** `at fn (/a/b.ts:1:2)`, `at /a/b.ts:1:2`, `at async fn (file:///a/b.ts:1:2)`. */
const FRAME = /^\s*at (?:.* \()?(.+?):(\d+):(\d+)\)?\s*$/;

function addonFrame(error: unknown, entry: string, own: ReadonlySet<string>): Position | undefined {
  const stack = isObject(error) ? error["stack"] : undefined;
  if (typeof stack !== "string") return undefined;
  for (const text of stack.split("\n")) {
    const match = FRAME.exec(text);
    if (match === null) continue;
    const [, where, line, column] = match as unknown as [string, string, string, string];
    const frame = { file: where.startsWith("file://") ? safePath(where) : where, line: Number(line), column: Number(column) };
    if (own.has(frame.file)) return frame;
    // An unmapped frame of one of this entry's bundles (Error.prepareStackTrace replaced).
    if (GENERATED.exec(frame.file)?.[1] === entry) {
      const mapped = mapGenerated(frame);
      if (mapped !== undefined && own.has(mapped.file)) return mapped;
    }
  }
  return undefined;
}

function mapGenerated(frame: Position): Position | undefined {
  const found = findSourceMap(frame.file)?.findEntry(frame.line - 1, frame.column - 1);
  if (found === undefined || !("originalSource" in found)) return undefined;
  const source = found.originalSource;
  return { file: source.startsWith("file://") ? safePath(source) : source, line: found.originalLine + 1, column: found.originalColumn + 1 };
}

function safePath(url: string): string {
  try {
    return fileURLToPath(url);
  } catch {
    return url;
  }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

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

  const name = addon["name"];
  if (name !== undefined && (typeof name !== "string" || !/^[^.=\s]+$/.test(name))) {
    invalid(`name must be a non-empty string without ".", "=" or spaces (it is the ADDON in --set ADDON.OPTION=VALUE), got ${kindOf(name)}`, "name");
  }

  const options = addon["options"];
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
      if (typeof s["type"] !== "string" || !OPTION_TYPES.has(s["type"])) {
        invalid(`${where}.type must be "string", "number" or "boolean", got ${kindOf(s["type"])}`, "options", option);
      }
      const fallback = s["default"];
      if (fallback !== undefined && !fitsType(fallback, s["type"] as OptionSpec["type"])) {
        invalid(`${where}.default must be a ${s["type"] as string}, got ${kindOf(fallback)}`, "options", option, "default");
      }
      if (s["description"] !== undefined && typeof s["description"] !== "string") {
        invalid(`${where}.description must be a string, got ${kindOf(s["description"])}`, "options", option, "description");
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

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

function resolveOptions(entry: string, name: string, addon: Addon, settings: Readonly<Record<string, string>>): Readonly<Record<string, unknown>> {
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

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
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

function didYouMean(word: string, candidates: readonly string[]): string {
  const guess = closestMatch(word, candidates);
  return guess === undefined ? "" : ` (did you mean ${guess}?)`;
}
