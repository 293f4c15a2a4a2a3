/**
 * Caps V8's young generation in the running process (no second process, no command-line flag).
 *
 * V8 starts the young generation with 1 MiB semi-spaces and doubles them, up to 16 MiB each,
 * after scavenges in which much survives, which a burst of handshakes is; it gives that memory
 * back only when its memory reducer runs, tens of seconds after the burst. So a proxy that has
 * just opened many tunnels holds about 2 KB per tunnel of young-generation slack in its RSS
 * (9,950 idle tunnels, paired runs of one build: 10.9 KB per tunnel without the cap, 8.9 with a
 * 4 MiB one). `--max-semi-space-size` is read only when the isolate is created (setting it later does
 * nothing), but `--semi-space-growth-factor` is read each time the young generation grows.
 * So once the semi-spaces reach MAX_SEMI_SPACE_MB the growth factor is set to 1; at 1 MiB, the
 * size V8 starts with, that happens before anything else runs and the young generation never
 * grows. (The size is checked after each garbage collection, which a long synchronous burst of
 * allocation can outrun by a doubling; the proxy's event loop turns often enough that it stops
 * at the cap.)
 *
 * Why 1 MiB and not more: an intercepted TLS tunnel makes Node allocate an ArrayBuffer (outside
 * the JavaScript heap) for each decrypted record, about 16 KiB, next to a kilobyte or so of objects in
 * the heap. Those buffers are freed only after the scavenge that finds them dead, so the larger
 * the semi-spaces the more such memory piles up between scavenges, and past V8's external-memory
 * limit it starts full mark-compacts: with 4 MiB semi-spaces a 1-stream intercepted download ran
 * 10 to 20 of them a second, with 1 MiB ones one in 8 s (the scavenges that replace them cost about
 * 0.2 ms each). Paired runs of an intercepted download, proxy CPU per MiB: 1,275 against 1,820
 * (2 MiB) and 1,397 against 1,735 (4 MiB). The same pairs for the rest found no cost: CPU per
 * handshake 146.7 against 146.6 µs (32 workers), per UDP echo 13.4 against 13.5 µs (23.2 against
 * 25.1 with capture), per MiB of plain bulk 279 against 281 µs. (An earlier engine spent about
 * 2.6% more CPU in GC in a handshake burst with 1 MiB semi-spaces; it allocated more per session.)
 *
 * A command line or NODE_OPTIONS that chooses a semi-space size itself is left alone. If V8 does
 * not know the flag (another V8), setting it does nothing and the young generation grows as V8
 * decides.
 */
import { PerformanceObserver } from "node:perf_hooks";
import v8 from "node:v8";

/** The largest semi-space, in MiB, the young generation grows to (the new space is two of them). */
export const MAX_SEMI_SPACE_MB = 1;

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
