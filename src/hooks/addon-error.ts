/** The one error type of addon loading (loader.ts and its parts): a stable code and, when known, where. */

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
