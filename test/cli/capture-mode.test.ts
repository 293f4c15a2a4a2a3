/**
 * sharedCaptureWarning: an existing capture file that others can read or write (mode & 0o077)
 * gets a loud warning when `run` opens it; a private or missing file does not. (The call in
 * `run`'s start-up is tested end to end in test/cli/capture-mode-run.test.ts.)
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { sharedCaptureWarning } from "../../src/cli/capture-file.js";

const dir = mkdtempSync(join(tmpdir(), "socksmith-mode-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fileWithMode(name: string, mode: number): string {
  const file = join(dir, name);
  writeFileSync(file, "");
  chmodSync(file, mode);
  return file;
}

describe("sharedCaptureWarning", () => {
  it.each([0o644, 0o640, 0o604, 0o660, 0o666, 0o602, 0o620, 0o601])("warns for mode %o, naming the mode and the fix", (mode) => {
    const file = fileWithMode(`shared-${mode.toString(8)}.db`, mode);
    const warning = sharedCaptureWarning(file);
    const octal = mode.toString(8).padStart(4, "0");
    expect(warning).toBe(`WARNING: capture file ${file} is accessible to other users (mode ${octal}) and will hold every byte relayed; chmod 600 ${file}`);
  });

  it.each([0o600, 0o400, 0o700])("is quiet for mode %o", (mode) => {
    expect(sharedCaptureWarning(fileWithMode(`private-${mode.toString(8)}.db`, mode))).toBeUndefined();
  });

  it("is quiet for a file that does not exist yet (it is created 0600)", () => {
    expect(sharedCaptureWarning(join(dir, "missing.db"))).toBeUndefined();
  });
});
