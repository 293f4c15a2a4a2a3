/**
 * Caps V8's young generation in the running process (no second process, no command-line flag).
 *
 * V8 starts the young generation with 1 MiB semi-spaces and doubles them, up to 16 MiB each,
 * after scavenges in which much survives, which a burst of handshakes is; it gives that memory
 * back only when its memory reducer runs, tens of seconds after the burst. So a proxy that has
 * just opened many tunnels holds about 2 KB per tunnel of young-generation slack in its RSS
 * (9,950 idle tunnels, paired runs of one build: 10.9 KB per tunnel without the cap, 8.9 with it).
 * `--max-semi-space-size` is read only when the isolate is created (setting it later does
 * nothing), but `--semi-space-growth-factor` is read each time the young generation grows.
 * So the young generation grows as usual until its semi-spaces reach MAX_SEMI_SPACE_MB, and then
 * its growth factor is set to 1. The size is checked after each garbage collection, which a
 * long synchronous burst of allocation can outrun by a doubling; the proxy's event loop turns
 * often enough that it stops at the cap. Smaller semi-spaces cost scavenges of objects that
 * would have died young: with 1 MiB ones (a growth factor of 1 from the start) a handshake
 * burst scavenged ten times as often and spent about 2.6% more CPU in GC; with 4 MiB the
 * scavenges were as many as without the cap. The bulk relay allocates next to nothing per byte
 * (a few scavenges per GiB either way).
 *
 * A command line or NODE_OPTIONS that chooses a semi-space size itself is left alone. If V8 does
 * not know the flag (another V8), setting it does nothing and the young generation grows as V8
 * decides.
 */
import { PerformanceObserver } from "node:perf_hooks";
import v8 from "node:v8";

/** The largest semi-space, in MiB, the young generation grows to (the new space is two of them). */
export const MAX_SEMI_SPACE_MB = 4;

const SEMI_SPACE_FLAGS = /(^|\s)--(max|min)[-_]semi[-_]space[-_]size\b/;

/** Whether the command line or NODE_OPTIONS already sets a semi-space size. */
export function semiSpaceChosen(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return execArgv.some((arg) => SEMI_SPACE_FLAGS.test(arg)) || SEMI_SPACE_FLAGS.test(nodeOptions ?? "");
}

/** The new space's size in bytes (both semi-spaces), or undefined if V8 does not report one. */
export function newSpaceBytes(): number | undefined {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size;
}

/**
 * Stops the young generation's growth once its semi-spaces are `maxSemiSpaceMb` MiB: checked
 * after each garbage collection until then (a performance observer of "gc" entries), after
 * which nothing is watched. Returns a function that stops watching.
 */
export function capYoungGeneration(maxSemiSpaceMb = MAX_SEMI_SPACE_MB): () => void {
  const limit = 2 * maxSemiSpaceMb * 1024 * 1024;
  const reached = (): boolean => (newSpaceBytes() ?? limit) >= limit;
  if (reached()) {
    stopGrowth();
    return () => undefined;
  }
  const observer = new PerformanceObserver(() => {
    if (!reached()) return;
    stopGrowth();
    observer.disconnect();
  });
  observer.observe({ entryTypes: ["gc"] });
  return () => observer.disconnect();
}

function stopGrowth(): void {
  v8.setFlagsFromString("--semi-space-growth-factor=1");
}
