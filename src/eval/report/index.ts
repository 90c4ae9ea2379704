/**
 * The output of `mac-lm eval`: results.json (validated), report.md, and the plots retention.svg/png and
 * cost.svg/png. Every file is written atomically; results.json first, so that a failure in the plots never costs
 * the numbers.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { renderMarkdown } from "./markdown.js";
import { renderPlots } from "./plots.js";
import { type Results, type ResultsInput, writeFileAtomic, writeResults } from "./results.js";

export * from "./results.js";
export { renderMarkdown, fmt2, fmtInt, TABLE1_METHODS, TABLE2_METHODS, type MarkdownOptions } from "./markdown.js";
export { retentionSpec, costSpec, renderSvg, svgToPng, renderPlots, estimateTextWidth, type Plot } from "./plots.js";

export interface ReportFiles {
  /** The validated results (defaults filled in), as written to results.json. */
  results: Results;
  /** The files written, absolute or relative as `dir` was given. */
  files: string[];
  /** What could not be made (e.g. a PNG where resvg has no binary for the platform); the rest was written. */
  warnings: string[];
}

/**
 * Writes DIR/results.json, DIR/report.md and, where there is something to plot, DIR/retention.{svg,png} and
 * DIR/cost.{svg,png}. Invalid results throw (naming the fields) after keeping them as DIR/results.invalid.json.
 */
export async function writeReport(dir: string, input: ResultsInput): Promise<ReportFiles> {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const warnings: string[] = [];
  const resultsFile = join(dir, "results.json");
  const results = writeResults(resultsFile, input);
  files.push(resultsFile);

  const plots = await renderPlots(results);
  const embedded: { retention?: string; cost?: string } = {};
  for (const name of ["retention", "cost"] as const) {
    const p = plots[name];
    if (!p) continue;
    const svgFile = join(dir, `${name}.svg`);
    writeFileAtomic(svgFile, p.svg);
    files.push(svgFile);
    embedded[name] = `${name}.svg`;
    if (p.png) {
      const pngFile = join(dir, `${name}.png`);
      writeFileAtomic(pngFile, p.png);
      files.push(pngFile);
    } else warnings.push(`${name}.png not written: ${p.error ?? "unknown error"}`);
  }

  const reportFile = join(dir, "report.md");
  writeFileAtomic(reportFile, renderMarkdown(results, { plots: embedded }));
  files.push(reportFile);
  return { results, files, warnings };
}
