import { defineConfig } from "vitest/config";

// `npm run torture`: the adversarial suite (loopback only, minutes). Files run one at a time:
// they load the proxy hard and measure its memory, and the machine may have two cores.
// The root config's include (test/**) never picks these files up.
export default defineConfig({
  test: {
    root: new URL("..", import.meta.url).pathname,
    include: ["torture/**/*.torture.ts"],
    reporters: ["default", "./torture/reporter.ts", "./test/support/summary-reporter.ts"],
    testTimeout: 300_000,
    hookTimeout: 60_000,
    fileParallelism: false,
    maxWorkers: 1,
  },
});
