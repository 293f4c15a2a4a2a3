/**
 * Sizes V8's young generation in the running process (no second process, no command-line flag).
 *
 * V8 starts the young generation with 1 MiB semi-spaces and doubles them, up to 16 MiB each,
 * after scavenges in which much survives, which a burst of handshakes is; it gives that memory
 * back only when its memory reducer runs, tens of seconds after the burst. So a proxy that has
 * just opened many tunnels holds about 2 KB per tunnel of young-generation slack in its RSS
 * (9,950 idle tunnels, paired runs of one build: 10.9 KB per tunnel without a cap, 8.9 with a
 * 4 MiB one). `--max-semi-space-size` is read only when the isolate is created (setting it later
 * does nothing), but `--semi-space-growth-factor` is read each time the young generation grows.
 *
 * So the launcher holds the semi-spaces at the 1 MiB they start with (growth factor 1) before
 * anything else loads: loading the CLI alone would double them twice. `run` then lets them grow
 * again (factor 2, V8's default) up to MAX_SEMI_SPACE_MB, unless it intercepts TLS, which keeps
 * them at 1 MiB:
 *
 * - Larger semi-spaces mean fewer scavenges for the same allocation, each finding about the same
 *   live objects (the sessions in flight), so less GC per handshake. 32 concurrent handshake
 *   workers, V8's --trace-gc totals per handshake: 12.0 µs with 1 MiB, 9.7 with 4 and 7.5 with 16
 *   (which cost idle memory, above).
 * - An intercepted TLS tunnel makes Node allocate an ArrayBuffer outside the JavaScript heap for
 *   each decrypted record, about 16 KiB, next to a kilobyte or so of objects in the heap. Those
 *   buffers are freed only after the scavenge that finds them dead, so the larger the semi-spaces
 *   the more such memory piles up between scavenges, and past V8's external-memory limit it starts
 *   full mark-compacts: with 4 MiB semi-spaces a 1-stream intercepted download ran 10 to 20 of
 *   them a second, with 1 MiB ones one in 8 s. Paired runs, proxy CPU per MiB: 1,397 against
 *   1,735 (4 MiB), 1,275 against 1,820 (2 MiB), and between builds 1,696 against 1,847 and 1,653
 *   against 2,220.
 *
 * The size is checked after each garbage collection, which a long synchronous burst of
 * allocation can outrun by a doubling; the proxy's event loop turns often enough that it stops
 * at the cap. A command line or NODE_OPTIONS that chooses a semi-space size itself is left alone.
 * If V8 does not know the flag (another V8), setting it does nothing and the young generation
 * grows as V8 decides.
 */
import { PerformanceObserver } from "node:perf_hooks";
import v8 from "node:v8";

/** The largest semi-space, in MiB, `run` lets the young generation grow to (the new space is two of them). */
export const MAX_SEMI_SPACE_MB = 4;

/** Set on the global object by `holdYoungGeneration`: the CLI's bundle has its own copy of this module. */
const HELD = Symbol.for("socksmith.young-generation-held");

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

/**
 * The launcher's first step: no growth from now on (the semi-spaces stay at the size V8 started
 * them with) until `releaseYoungGeneration`.
 */
export function holdYoungGeneration(): void {
  stopGrowth();
  (globalThis as Record<symbol, unknown>)[HELD] = true;
}

/**
 * Lets a held young generation grow again, up to `maxSemiSpaceMb` (see capYoungGeneration). Does
 * nothing in a process the launcher did not hold: one whose command line chose a semi-space
 * size, or a test importing the CLI. Returns whether it released.
 */
export function releaseYoungGeneration(maxSemiSpaceMb = MAX_SEMI_SPACE_MB): boolean {
  const global = globalThis as Record<symbol, unknown>;
  if (global[HELD] !== true) return false;
  global[HELD] = false;
  v8.setFlagsFromString("--semi-space-growth-factor=2");
  capYoungGeneration(maxSemiSpaceMb);
  return true;
}

function stopGrowth(): void {
  v8.setFlagsFromString("--semi-space-growth-factor=1");
}
