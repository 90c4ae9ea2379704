// Prints one plain closing line, "vitest: N passed, N failed[, N skipped]", that CI's log reader understands.
import type { Reporter, TestModule } from "vitest/node";

export default class ClosingLineReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    for (const m of modules)
      for (const t of m.children.allTests()) {
        const s = t.result().state;
        if (s === "passed") passed++;
        else if (s === "failed") failed++;
        else skipped++;
      }
    const errors = modules.filter((m) => m.state() === "failed" && [...m.children.allTests()].length === 0).length;
    process.stdout.write(
      `\nvitest: ${passed} passed, ${failed + errors} failed${skipped ? `, ${skipped} skipped` : ""}\n`,
    );
  }
}
