import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    reporters: ["default", "./test/support/summary-reporter.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Socket tests share two cores with the proxy under test; keep the pool small.
    maxWorkers: 2,
  },
});
