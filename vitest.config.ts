import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    reporters: ["default", "./test/support/summary-reporter.ts"],
    // The CLI tests spawn dist/cli.js: build it first when it is missing or older than src/.
    globalSetup: ["./test/support/fresh-dist.ts"],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Socket tests share two cores with the proxy under test; keep the pool small.
    maxWorkers: 2,
  },
});
