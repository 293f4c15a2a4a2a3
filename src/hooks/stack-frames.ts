/**
 * Where an addon is, in stack frames and source: the first frame of an error in the addon's own
 * files (`addonLocation`), and where a hook is written (`hookLocation`), both as
 * `/abs/path/file.ts:line:column` (1-based). bundle.ts registers each evaluation here (its
 * generated file name, code and the files it used); frames in a generated bundle are mapped back
 * through its source map. Works whether or not Node's source-map stack rewriting is active (test
 * runners replace it).
 */
import { findSourceMap } from "node:module";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { isObject } from "../lang/is-object.js";
import type { HookName } from "./api.js";

/** A position in a file: 1-based line and column. */
export interface Position {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

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
const GENERATED = /^(.*)\.(?:\d+|\d+-\d+)\.c?js$/;

/** A fresh generated file name for one evaluation of `entry`'s bundle. */
export function generatedFile(entry: string): string {
  return `${entry}.${++evaluations}.js`;
}

/** Remembers an evaluated addon's generated code and file name (for hookLocation). Weak. */
export function rememberGenerated(addon: object, code: string, generated: string): void {
  generatedOf.set(addon, { code, generated });
}

/** Adds the files a bundle of `entry` used to those addonLocation counts as the addon's own. */
export function rememberInputs(entry: string, inputs: readonly string[]): void {
  let known = inputsByEntry.get(entry);
  if (known === undefined) inputsByEntry.set(entry, (known = new Set()));
  for (const input of inputs) known.add(input);
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

/** `at fn (/a/b.ts:1:2)`, `at /a/b.ts:1:2`, `at async fn (file:///a/b.ts:1:2)`. */
const FRAME = /^\s*at (?:.* \()?(.+?):(\d+):(\d+)\)?\s*$/;

/** The first frame of `error`'s stack in one of `own` (the files of `entry`'s bundle), mapped back when generated. */
export function addonFrame(error: unknown, entry: string, own: ReadonlySet<string>): Position | undefined {
  const stack = isObject(error) ? error.stack : undefined;
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
