/**
 * vitest globalSetup: the CLI tests spawn dist/cli.js, so `vitest` alone must not test a stale
 * build. When dist/cli.js is missing or older than any file under src/ (build.mjs writes it last),
 * this builds first (`node scripts/build.mjs`, about a second) and fails the run with the build's
 * output when the build fails. A fresh dist/ (as `npm test` leaves it) is not rebuilt.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "..", "..");

/** The newest modification time (ms) of the files under `dir`, and which file has it. */
export function newestFile(dir: string): { path: string; mtimeMs: number } | undefined {
  let newest: { path: string; mtimeMs: number } | undefined;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const { mtimeMs } = statSync(path);
    if (newest === undefined || mtimeMs > newest.mtimeMs) newest = { path, mtimeMs };
  }
  return newest;
}

/** Why dist/ must be rebuilt, or undefined when dist/cli.js is newer than every source file. */
export function staleReason(root: string): string | undefined {
  let built: number;
  try {
    built = statSync(join(root, "dist", "cli.js")).mtimeMs;
  } catch {
    return "dist/cli.js is missing";
  }
  const newest = newestFile(join(root, "src"));
  if (newest !== undefined && newest.mtimeMs > built) return `${newest.path.slice(root.length + 1)} is newer than dist/cli.js`;
  return undefined;
}

export default function setup(): void {
  const why = staleReason(ROOT);
  if (why === undefined) return;
  const build = spawnSync(process.execPath, ["scripts/build.mjs"], { cwd: ROOT, encoding: "utf8" });
  if (build.status !== 0) {
    const output = `${build.stdout ?? ""}${build.stderr ?? ""}`.trim();
    throw new Error(`dist/ is stale (${why}) and \`node scripts/build.mjs\` failed (${build.error?.message ?? `exit ${build.status}`}):\n${output}`);
  }
  // Said once, so a run that rebuilt is not mistaken for one that tested an older build.
  process.stdout.write(`built dist/ first: ${why}\n`);
}
