// Prints the figures each torture test recorded (lib/figures.ts), one block per test, before
// the summary reporter's final `N passed, M failed` line.
import type { Reporter, TestModule } from "vitest/node";
import { relative } from "node:path";

export default class FiguresReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const lines = ["", "torture figures:"];
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const figures = test.meta().figures;
        const state = test.result().state;
        lines.push(`  ${state === "passed" ? "ok  " : state === "failed" ? "FAIL" : "skip"} ${relative(process.cwd(), module.moduleId)} > ${test.name}`);
        for (const [key, value] of Object.entries(figures ?? {})) {
          lines.push(`         ${key}: ${typeof value === "number" && !Number.isInteger(value) ? value.toFixed(2) : value}`);
        }
      }
    }
    process.stdout.write(`${lines.join("\n")}\n`);
  }
}
