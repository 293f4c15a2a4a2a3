/**
 * Editing a paused chunk's or datagram's bytes in the person's editor (`e`, issue 15).
 *
 * - The bytes go to a private temporary file (0600 in a fresh 0700 directory, removed after):
 *   as they are when they are text (well-formed UTF-8 that looksLikeText (format/printable.ts)
 *   accepts, with no control characters but TAB, LF and CR), else as a hex dump (format/hex-dump.ts) under a
 *   comment saying how to edit it, parsed back with format/hex-parse.ts.
 * - Text: editors like to end a file with a line feed; when the original did not end with one, a
 *   single LF or CRLF the editor added at the very end is taken off again.
 * - The editor is `$VISUAL`, else `$EDITOR`, else `vi`, run by `/bin/sh -c` (so "code --wait" works)
 *   as a child process: the relay's thread is never blocked while a person edits.
 * - The outcome is never a guess: a hex mistake is an `error` with its line, and so is an editor
 *   that fails or exits non-zero; the caller then keeps the original bytes.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatHexParseError, hexDump, looksLikeText, parseHexDump } from "../format/index.js";

export type EditFormat = "text" | "hex";

export type EditOutcome =
  | { readonly kind: "edited"; readonly bytes: Uint8Array }
  | { readonly kind: "unchanged" }
  | { readonly kind: "error"; readonly message: string };

export interface EditOptions {
  /** The editor command (default `$VISUAL`, `$EDITOR`, then `vi`). */
  readonly editor?: string;
  /** What the bytes are, for the hex dump's header comment, e.g. "down chunk 3 of session 12". */
  readonly title?: string;
  /** Where the temporary directory goes (default the system's). */
  readonly tmp?: string;
}

const FATAL_UTF8 = new TextDecoder("utf-8", { fatal: true });

/** How bytes are offered for editing: text when they are text a person can edit as is, else a hex dump. */
export function editFormat(bytes: Uint8Array): EditFormat {
  if (!looksLikeText(bytes)) return "hex";
  let text: string;
  try {
    text = FATAL_UTF8.decode(bytes);
  } catch {
    return "hex";
  }
  // ESC, NUL and other controls would be invisible or mangled in an editor.
  return /[\u0000-\u0008\u000b-\u000c\u000e-\u001f\u007f-\u009f]/.test(text) ? "hex" : "text";
}

/** The file's contents for `bytes` in `format`. */
export function editableText(bytes: Uint8Array, format: EditFormat, title = "the bytes"): Uint8Array {
  if (format === "text") return bytes;
  const header = [
    `# socksmith: ${title.replace(/[^\x20-\x7e]/g, "?")}, ${bytes.length} bytes, as a hex dump.`,
    "# Edit the hex bytes (two digits each), add or remove any. The offsets and the |text| column are",
    "# ignored, and so are lines starting with #. Save and quit to send; a mistake keeps the original.",
  ];
  return Buffer.from(`${[...header, ...hexDump(bytes)].join("\n")}\n`);
}

/** The bytes a person's file stands for, given the original; "unchanged" when they are the same. */
export function editedBytes(original: Uint8Array, format: EditFormat, file: Uint8Array): EditOutcome {
  let bytes: Uint8Array;
  if (format === "hex") {
    const parsed = parseHexDump(Buffer.from(file.buffer, file.byteOffset, file.byteLength).toString("utf8"));
    if (!parsed.ok) return { kind: "error", message: `hex dump ${formatHexParseError(parsed.error)}` };
    bytes = parsed.bytes;
  } else {
    bytes = file;
    const endsInLf = original.length > 0 && original[original.length - 1] === 0x0a;
    if (!endsInLf && bytes.length > 0 && bytes[bytes.length - 1] === 0x0a) {
      const crlf = bytes.length > 1 && bytes[bytes.length - 2] === 0x0d && !(original.length > 0 && original[original.length - 1] === 0x0d);
      bytes = bytes.subarray(0, bytes.length - (crlf ? 2 : 1));
    }
  }
  return Buffer.from(bytes).equals(Buffer.from(original)) ? { kind: "unchanged" } : { kind: "edited", bytes: Uint8Array.from(bytes) };
}

/** The editor command: `$VISUAL`, `$EDITOR`, then vi. */
export function editorCommand(env: NodeJS.ProcessEnv = process.env): string {
  const pick = [env.VISUAL, env.EDITOR].find((e) => e !== undefined && e.trim() !== "");
  return pick ?? "vi";
}

/**
 * Opens `bytes` in the editor on the terminal (inherited stdio) and resolves with what the person
 * made of them. The caller has handed the terminal over (terminal-handoff.ts) before calling.
 */
export async function editBytes(bytes: Uint8Array, options: EditOptions = {}): Promise<EditOutcome> {
  const format = editFormat(bytes);
  const dir = await mkdtemp(join(options.tmp ?? tmpdir(), "socksmith-edit-"));
  const file = join(dir, format === "text" ? "paused.txt" : "paused.hex");
  try {
    await writeFile(file, editableText(bytes, format, options.title), { mode: 0o600 });
    const editor = options.editor ?? editorCommand();
    const status = await run(editor, file);
    if (status !== 0) return { kind: "error", message: `the editor (${editor}) ${status}: the original is kept` };
    return editedBytes(bytes, format, await readFile(file));
  } catch (err) {
    return { kind: "error", message: `editing failed: ${(err as Error).message}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs `editor FILE` through the shell; resolves with 0, or words for how it failed. */
function run(editor: string, file: string): Promise<0 | string> {
  return new Promise((resolve) => {
    // "$1" keeps the file one argument whatever its path; the editor's own words are the shell's to split.
    const child = spawn("/bin/sh", ["-c", `${editor} "$1"`, "socksmith-editor", file], { stdio: "inherit" });
    child.once("error", (err) => resolve(`could not start (${err.message})`));
    child.once("exit", (code, signal) => resolve(code === 0 ? 0 : signal !== null ? `was killed by ${signal}` : `exited with status ${code}`));
  });
}
