import { defineConfig } from "vitest/config";

// `npm run soak`: long-running checks kept out of the unit run (memory across many repetitions).
// One file at a time: they measure the heap. The root config's include (test/**) never picks
// these files up.
export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    include: ["soak/**/*.soak.ts"],
    reporters: ["default", "./test/support/summary-reporter.ts"],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
