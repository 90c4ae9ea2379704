/**
 * The fault-injection table: `npx tsx dev/faults/run.ts [--filter TEXT] [--out FILE]` runs every case of
 * test/faults/harness.ts through the real CLI, prints one line per case and writes the table as JSON
 * (default results/faults/faults.json).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { runFaults } from "../../test/faults/harness.js";

const { values } = parseArgs({
  options: { filter: { type: "string" }, out: { type: "string", default: "results/faults/faults.json" } },
});
const table = await runFaults({ filter: values.filter, log: (l) => console.log(l) });
const byGroup: Record<string, Record<string, number>> = {};
for (const c of table.cases) {
  const g = (byGroup[c.group] ??= { tried: 0, detected: 0, harmless: 0, unclear: 0, "silently wrong": 0 });
  g.tried!++;
  g[c.outcome]!++;
}
console.log(
  `\ncases tried ${table.tried}, detected ${table.detected}, harmless ${table.harmless}, unclear ${table.unclear}, silently wrong ${table.silentlyWrong} (${table.seconds.toFixed(0)} s)`,
);
for (const [g, n] of Object.entries(byGroup))
  console.log(
    `  ${g.padEnd(18)} ${Object.entries(n)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
  );
mkdirSync(dirname(values.out!), { recursive: true });
writeFileSync(
  values.out!,
  JSON.stringify({ command: "npx tsx dev/faults/run.ts", date: new Date().toISOString(), byGroup, ...table }, null, 1) +
    "\n",
);
console.log(`table written to ${values.out}`);
