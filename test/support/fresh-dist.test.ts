/** The globalSetup's staleness rule (fresh-dist.ts), on a scratch tree with set modification times. */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { staleReason } from "./fresh-dist.js";

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A tree with src/a.ts and src/deep/b.ts modified at the given seconds, and dist/cli.js at `built` (absent when undefined). */
function tree(a: number, b: number, built: number | undefined): string {
  const root = mkdtempSync(join(tmpdir(), "socksmith-dist-"));
  roots.push(root);
  mkdirSync(join(root, "src", "deep"), { recursive: true });
  const files: Array<[string, number | undefined]> = [
    ["src/a.ts", a],
    ["src/deep/b.ts", b],
    ["dist/cli.js", built],
  ];
  for (const [file, at] of files) {
    if (at === undefined) continue;
    mkdirSync(join(root, file, ".."), { recursive: true });
    writeFileSync(join(root, file), "");
    utimesSync(join(root, file), at, at);
  }
  return root;
}

describe("fresh-dist: when vitest builds dist/ first", () => {
  it("dist/cli.js missing", () => {
    expect(staleReason(tree(1000, 1000, undefined))).toBe("dist/cli.js is missing");
  });

  it("a source file, however deep, newer than dist/cli.js", () => {
    expect(staleReason(tree(1000, 3000, 2000))).toBe("src/deep/b.ts is newer than dist/cli.js");
  });

  it("dist/cli.js newer than every source file: no build", () => {
    expect(staleReason(tree(1000, 2000, 3000))).toBeUndefined();
  });
});
