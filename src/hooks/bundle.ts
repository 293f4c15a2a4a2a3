/**
 * Bundling and evaluation, the loader's first two steps (loader.ts), one addon file at a time:
 * - `bundle` builds the file and everything it imports with esbuild, in-process (packages stay
 *   external: `require`d from the addon's own folder at run time; `import type` is erased, so
 *   `import type { Addon } from "socksmith/addon"` works from any folder);
 * - `evaluate` runs the bundle as a fresh CommonJS module, with source maps on, so stack traces
 *   name the addon's own `file.ts:line:column`, and registers it with stack-frames.ts.
 * Nothing is cached: each call builds and evaluates anew, and a version that is no longer
 * referenced is garbage-collected whole (hot reload depends on it).
 *
 * Why CommonJS through `Module.prototype._compile` (docs/architecture.md): a cache-busting
 * ESM `import()` keeps every version in Node's module map (~130 KB per reload, never freed),
 * and `vm` scripts get no source maps. `_compile` on a fresh `Module` is both leak-free and
 * source-mapped. It is an undocumented internal: the first evaluation checks it once per process
 * (`compileProblem`: a tiny module's exports and its source map). Where it does not work, bundles
 * are evaluated the documented way instead: written beside the entry as `<entry>.<pid>-<n>.cjs`
 * (exclusive create), `require`d from there, then removed from the disk and from `require.cache`.
 * Same folder, so packages and the map's relative sources resolve as before; `.cjs`, so a
 * `"type": "module"` package.json does not make it ESM. It needs a writable addon folder, and
 * Node's resolution caches keep a few strings per version (leakier, never wrong); the caller logs
 * the problem once as a warning.
 * Consequence for authors: no top-level `await` (esbuild says so, as a BUNDLE_FAILED).
 */
import { build, type BuildFailure, type Message } from "esbuild";
import Module, { createRequire, findSourceMap } from "node:module";
import { unlinkSync, writeFileSync } from "node:fs";
import { stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { isObject } from "../lang/is-object.js";
import { AddonError } from "./addon-error.js";
import { HOOK_NAMES } from "./hook-names.js";
import { addonFrame, generatedFile, rememberGenerated } from "./stack-frames.js";

/** Node's CommonJS internals used here (undocumented; see the file comment). */
export type CompilableModule = Module & {
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
 * Bundles `entry` (absolute) and everything it imports; packages stay external. Returns the
 * code (CommonJS, inline source map) and the absolute paths of the files it used.
 * @throws AddonError BUNDLE_FAILED: a missing file, or esbuild's first error with its position.
 */
export async function bundle(entry: string): Promise<{ code: string; inputs: string[] }> {
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

/** How a bundle is evaluated: `Module#_compile` on a fresh Module, or `require` of a file written for it (the fallback). */
export type Evaluation = "compile" | "require";

/** The answer of the one check per process: why `_compile` cannot be used (null: it can; undefined: not checked yet). */
let compileChecked: string | null | undefined;

/**
 * Why `_compile` on a fresh Module does not work on this Node, or undefined when it does. Checked
 * once per process, on first call (the first evaluation calls it): the caller logs a defined answer
 * once as a warning; bundles are then evaluated by `require` (see the file comment).
 */
export function compileProblem(): string | undefined {
  compileChecked ??= probeCompile(freshModule) ?? null;
  return compileChecked ?? undefined;
}

/** Set by `simulateBrokenCompile`: evaluating by `_compile` then throws it (as it fails on such a Node). */
let simulatedProblem: string | undefined;

/**
 * For tests: behave as on a Node where `_compile` does not work, for the rest of the process:
 * `compileProblem` says `problem`, bundles are evaluated by `require`, and `_compile` throws.
 */
export function simulateBrokenCompile(problem: string): void {
  simulatedProblem = problem;
  compileChecked = problem;
}

/** A fresh CommonJS module for `filename`: packages resolve from `dir` upward, as they would for a file there. */
function freshModule(filename: string, dir: string): CompilableModule {
  const mod = new Module(filename) as CompilableModule;
  mod.filename = filename;
  mod.paths = ModuleInternals._nodeModulePaths(dir);
  return mod;
}

/** Checks made so far (each compiles a file name of its own). */
let checks = 0;

/**
 * Compiles a tiny module with a source map through `make(...)._compile` and checks what `evaluate`
 * relies on: the module's exports are what its code set, and Node has its source map (by file name,
 * as stack traces and stack-frames.ts look it up) with the mapping the code carries. Returns the
 * first thing that did not hold, or undefined.
 */
export function probeCompile(make: (filename: string, dir: string) => CompilableModule): string | undefined {
  process.setSourceMapsEnabled(true);
  const dir = tmpdir();
  // A name no earlier check used: a map Node still holds for an old one would answer for this one.
  const filename = join(dir, `socksmith-compile-check-${process.pid}-${++checks}.ts.js`);
  // Generated line 2 comes from line 5 of check.ts (";AAIA": line 1 unmapped, then +4 lines).
  const map = { version: 3, sources: ["check.ts"], names: [], mappings: ";AAIA" };
  const inline = `data:application/json;base64,${Buffer.from(JSON.stringify(map)).toString("base64")}`;
  const code = `"use strict";\nmodule.exports = { answer: 42 };\n//# sourceMappingURL=${inline}\n`;
  let mod: CompilableModule;
  try {
    mod = make(filename, dir);
    if (typeof mod._compile !== "function") return "Module.prototype._compile is not a function";
    mod._compile(code, filename);
  } catch (err) {
    return `Module#_compile threw: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (!isObject(mod.exports) || mod.exports.answer !== 42) return "Module#_compile did not run the code into module.exports";
  const entry = findSourceMap(filename)?.findEntry(1, 0);
  if (entry === undefined || !("originalLine" in entry) || entry.originalLine !== 4) return "Module#_compile did not register the code's source map";
  return undefined;
}

/** Runs the bundle as a fresh CommonJS module; returns the addon (its default export). `how`: see `Evaluation`. */
export function evaluate(
  entry: string,
  code: string,
  inputs: readonly string[],
  how: Evaluation = compileProblem() === undefined ? "compile" : "require",
): unknown {
  // Idempotent and cheap; stack traces then show `file.ts:line:col`, including inside `_compile`.
  process.setSourceMapsEnabled(true);
  let generated = generatedFile(entry);
  let mod: Module;
  try {
    if (how === "compile") {
      const fresh = freshModule(generated, dirname(entry));
      // A separate require: packages first required from here record the throwaway module made by
      // createRequire as their `parent`, not this one (which would then outlive its version).
      fresh.require = createRequire(entry);
      if (simulatedProblem !== undefined) throw new Error(simulatedProblem);
      fresh._compile(code, generated);
      mod = fresh;
    } else {
      generated = `${generated.slice(0, -".js".length).replace(/\.(\d+)$/, `.${process.pid}-$1`)}.cjs`;
      mod = requireWritten(entry, generated, code);
    }
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
  const empty = isObject(exports) && exports.__esModule !== true && Object.keys(exports).length === 0;
  const exported = empty ? undefined : isObject(exports) && exports.__esModule === true ? exports.default : exports;
  if (isObject(exported) || typeof exported === "function") {
    modules.set(exported, mod);
    rememberGenerated(exported, code, generated);
    for (const hook of HOOK_NAMES) {
      const value: unknown = (exported as Record<string, unknown>)[hook];
      if (typeof value === "function") modules.set(value, mod);
    }
  }
  return exported;
}

/**
 * The fallback evaluation: writes `code` to `file` (beside the entry; never over an existing
 * file), requires it from the entry's folder and returns its module, leaving neither the file
 * nor a `require.cache` entry behind (the caller keeps the module alive, as for `_compile`).
 */
function requireWritten(entry: string, file: string, code: string): Module {
  const load = createRequire(entry);
  try {
    writeFileSync(file, code, { flag: "wx" });
  } catch (err) {
    throw new Error(`cannot write ${file} to evaluate the bundle by require (Module#_compile does not work on this Node): ${(err as Error).message}`);
  }
  try {
    load(file);
    const mod = load.cache[file];
    if (mod === undefined) throw new Error(`${file} was required but is not in require.cache`);
    return mod as Module;
  } finally {
    delete load.cache[file];
    try {
      unlinkSync(file);
    } catch {
      // Already gone: nothing is left behind either way.
    }
  }
}

/** `import { Addon } from "socksmith/addon"` without `type` is kept (verbatimModuleSyntax). */
function importHint(err: unknown): string {
  return err instanceof Error && err.message.includes("socksmith/addon") ? ' (import the addon types with `import type { Addon } from "socksmith/addon"`)' : "";
}

function describeThrown(err: unknown): string {
  if (err instanceof Error) return err.message === "" ? err.name : `${err.name === "Error" ? "" : `${err.name}: `}${err.message}`;
  try {
    return typeof err === "string" ? err : (JSON.stringify(err) ?? String(err));
  } catch {
    return String(err);
  }
}
