// The fault-injection test (test/faults/harness.ts): every case of damaged banks, model files, checkpoints, configs
// and inputs, run through the real CLI, ends in a clear error naming the problem or in exactly the clean result.
import { describe, expect, it } from "vitest";
import { runFaults } from "./harness.js";

describe("fault injection through the CLI", () => {
  it("never answers silently wrong, never fails without naming the problem", { timeout: 900_000 }, async () => {
    const lines: string[] = [];
    const t = await runFaults({ log: (l) => lines.push(l) });
    console.log(
      `fault injection: ${t.tried} cases, ${t.detected} detected, ${t.harmless} harmless, ${t.unclear} unclear, ${t.silentlyWrong} silently wrong (${t.seconds.toFixed(0)} s)`,
    );
    const bad = t.cases.filter((c) => c.outcome === "unclear" || c.outcome === "silently wrong");
    expect(bad.map((c) => `${c.outcome}: ${c.name}: ${c.detail}`)).toEqual([]);
    expect(t.tried).toBeGreaterThanOrEqual(80);
    expect(t.detected).toBeGreaterThan(t.tried / 2);
  });
});
