/**
 * The young-generation cap of the binary (src/cli/launch-heap.ts): which command lines choose
 * their own size, and, in fresh Node processes, that the cap holds the new space where the
 * same allocations without it let V8 grow it to its default maximum.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { transformSync } from "esbuild";
import { afterAll, describe, expect, it } from "vitest";
import { semiSpaceChosen } from "../../src/cli/launch-heap.js";

const ROOT = join(import.meta.dirname, "..", "..");
const dir = mkdtempSync(join(tmpdir(), "socksmith-launch-heap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Runs a fresh Node process that sizes its young generation as `mode` says, then allocates
 * objects that survive several scavenges, in small steps with the event loop turning between them
 * (what a burst of handshakes does); prints the largest new space seen after a turn (V8 may shrink
 * it again near the end of the burst: in 1 of 12 runs on a loaded machine a released one reached
 * 8 MiB and was back at 4 MiB when the burst ended). Modes: "free" (V8 alone), "cap"
 * (capped at 1 MiB semi-spaces), "hold" (the launcher's hold), "release" (held, then released up
 * to 4 MiB, as `run` without --tls does), "release-unheld" (released without a hold).
 */
function newSpaceAfterBurst(mode: "free" | "cap" | "hold" | "release" | "release-unheld"): number {
  const module = transformSync(readFileSync(join(ROOT, "src/cli/launch-heap.ts"), "utf8"), { loader: "ts", format: "esm" }).code;
  writeFileSync(join(dir, "launch-heap.mjs"), module);
  const driver = join(dir, "driver.mjs");
  writeFileSync(
    driver,
    `import { capYoungGeneration, holdYoungGeneration, newSpaceBytes, releaseYoungGeneration } from "./launch-heap.mjs";
const mode = process.argv[2];
if (mode === "cap") capYoungGeneration(1);
if (mode === "hold" || mode === "release") holdYoungGeneration();
if (mode === "release" || mode === "release-unheld") console.error(releaseYoungGeneration(4) ? "released" : "not held");
let keep = [];
let largest = 0;
for (let round = 0; round < 400; round++) {
  for (let i = 0; i < 2000; i++) keep.push({ i, list: [i] });
  if (keep.length > 200000) keep = keep.slice(100000);
  await new Promise((resolve) => setImmediate(resolve));
  largest = Math.max(largest, newSpaceBytes());
}
console.log(largest);
`,
  );
  const out = execFileSync(process.execPath, [driver, mode], { encoding: "utf8", timeout: 15_000, stdio: ["ignore", "pipe", "pipe"] });
  return Number(out.trim());
}

describe("young-generation cap", () => {
  it("a semi-space size on the command line or in NODE_OPTIONS is left alone", () => {
    expect(semiSpaceChosen(["--max-semi-space-size=2"], undefined)).toBe(true);
    expect(semiSpaceChosen(["--enable-source-maps"], "--max_semi_space_size=8")).toBe(true);
    expect(semiSpaceChosen(["--min-semi-space-size=1"], "")).toBe(true);
    expect(semiSpaceChosen(["--enable-source-maps", "--max-old-space-size=100"], "--max-old-space-size=64")).toBe(false);
    expect(semiSpaceChosen([], undefined)).toBe(false);
  });

  it("holds the new space near the cap where V8 alone grows it to its maximum", () => {
    const free = newSpaceAfterBurst("free");
    const capped = newSpaceAfterBurst("cap");
    // Two 1 MiB semi-spaces; one more doubling may happen before the observer sees the size.
    expect(capped).toBeLessThanOrEqual(4 * 1024 * 1024);
    expect(capped).toBeGreaterThanOrEqual(2 * 1024 * 1024);
    expect(free).toBeGreaterThanOrEqual(16 * 1024 * 1024);
  });

  it("the launcher's hold keeps V8's starting size; a release lets it grow to the cap, and only after a hold", () => {
    const MiB = 1024 * 1024;
    const held = newSpaceAfterBurst("hold");
    const released = newSpaceAfterBurst("release");
    const unheld = newSpaceAfterBurst("release-unheld");
    // Held: the two 1 MiB semi-spaces V8 starts with, through the same burst that grows the others.
    expect(held).toBeLessThanOrEqual(2 * MiB);
    // Released up to 4 MiB semi-spaces (one more doubling may happen before the observer sees it).
    expect(released).toBeGreaterThanOrEqual(8 * MiB);
    expect(released).toBeLessThanOrEqual(16 * MiB);
    // Nothing was held, so nothing is capped: V8 grows it to its maximum.
    expect(unheld).toBeGreaterThanOrEqual(16 * MiB);
  });

  it("dist/cli.js runs through its shebang and through node", () => {
    const cli = join(ROOT, "dist", "cli.js");
    const direct = spawnSync(cli, ["--version"], { encoding: "utf8", timeout: 15_000 });
    const viaNode = spawnSync(process.execPath, [cli, "--version"], { encoding: "utf8", timeout: 15_000 });
    expect(direct.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(viaNode.stdout.trim()).toBe(direct.stdout.trim());
  });
});
