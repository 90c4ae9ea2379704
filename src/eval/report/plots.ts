/**
 * The report's plots, as Vega-Lite specs rendered headless to SVG by Vega (renderer "none": no canvas, no DOM),
 * and SVG → PNG by resvg (a prebuilt native binary per platform, loaded only when a PNG is asked for).
 *
 * (a) retention: the share of the initial F1 kept (%) vs the number of additional documents, one line per method.
 * (b) aggregation cost: MAC's aggregation time and memory vs the memory bank size (log x), full vs hierarchical.
 */
import type { TopLevelSpec } from "vega-lite";
import { MacLmError } from "../../errors.js";
import { METHOD_LABELS, METHOD_NAMES, type Results } from "./results.js";

/** Fonts the SVG asks for, first found wins (resvg uses the system's fonts; there is no fontconfig aliasing). */
const FONT = "Helvetica, Arial, 'DejaVu Sans', 'Liberation Sans', sans-serif";

const CONFIG = {
  font: FONT,
  padding: 8,
  background: "white",
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true, gridColor: "#e6e6e6" },
  legend: { labelFontSize: 11, titleFontSize: 12 },
  title: { fontSize: 14, subtitleFontSize: 11, anchor: "start" },
} as const;

/** The retention plot's spec, or null when no method has a retention curve. */
export function retentionSpec(results: Results): TopLevelSpec | null {
  const methods = METHOD_NAMES.filter((m) => results.retention[m] !== undefined);
  if (methods.length === 0) return null;
  const values = methods.flatMap((m) =>
    results.retention[m]!.filter(([, share]) => share !== null).map(([extra, share]) => ({
      method: METHOD_LABELS[m],
      extra_docs: extra,
      share,
    })),
  );
  const setup = results.retention_setup;
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: CONFIG,
    width: 520,
    height: 320,
    title: {
      text: "Knowledge retention",
      subtitle: setup
        ? `F1 on the questions of the first ${setup.initial_docs} documents (${setup.n_questions} questions), as a share of its initial value`
        : "F1 on the first documents' questions, as a share of its initial value",
    },
    layer: [
      {
        data: { values: [{ y: 100 }] },
        mark: { type: "rule", color: "#999999", strokeDash: [4, 4] },
        encoding: { y: { field: "y", type: "quantitative" } },
      },
      {
        data: { values },
        mark: { type: "line", point: { filled: true, size: 50 }, strokeWidth: 2 },
        encoding: {
          x: { field: "extra_docs", type: "quantitative", title: "additional documents" },
          y: { field: "share", type: "quantitative", title: "share of initial F1 kept (%)", scale: { zero: true } },
          color: {
            field: "method",
            type: "nominal",
            title: "method",
            scale: { domain: methods.map((m) => METHOD_LABELS[m]) },
          },
          shape: {
            field: "method",
            type: "nominal",
            title: "method",
            scale: { domain: methods.map((m) => METHOD_LABELS[m]) },
          },
        },
      },
    ],
  };
}

/** The aggregation cost plot's spec (time and memory side by side), or null when it was not measured. */
export function costSpec(results: Results): TopLevelSpec | null {
  const cost = results.aggregation_cost;
  if (cost.status !== "ok") return null;
  const values = cost.points.flatMap((p) =>
    p.status === "ok" ? [{ entries: p.entries, mode: p.mode, ms: p.ms, mb: p.memory_mb }] : [],
  );
  if (values.length === 0) return null;
  const sizes = [...new Set(values.map((v) => v.entries))].sort((a, b) => a - b);
  const panel = (field: "ms" | "mb", title: string, axisTitle: string) => ({
    width: 300,
    height: 260,
    title,
    mark: { type: "line" as const, point: { filled: true, size: 60 }, strokeWidth: 2 },
    encoding: {
      x: {
        field: "entries",
        type: "quantitative" as const,
        title: "memory bank entries (log scale)",
        scale: { type: "log" as const },
        axis: { values: sizes, format: "~s" },
      },
      y: {
        field,
        type: "quantitative" as const,
        title: axisTitle,
        // Log scale where it can be (all values positive): the points span orders of magnitude.
        scale: values.every((v) => v[field] > 0) ? { type: "log" as const } : { zero: true },
      },
      color: {
        field: "mode",
        type: "nominal" as const,
        title: "aggregation",
        scale: { domain: ["full", "hierarchical"] },
      },
      shape: {
        field: "mode",
        type: "nominal" as const,
        title: "aggregation",
        scale: { domain: ["full", "hierarchical"] },
      },
    },
  });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    config: CONFIG,
    title: {
      text: "MAC aggregation cost vs memory bank size",
      subtitle:
        cost.group_size !== undefined
          ? `full attention over the bank vs hierarchical (groups of ${cost.group_size})`
          : "full attention over the bank vs hierarchical",
    },
    data: { values },
    hconcat: [panel("ms", "time", "time per aggregation (ms)"), panel("mb", "memory", "memory (MB)")],
  };
}

/**
 * Text width (px) for the layout. Without a canvas Vega guesses 0.8 em per character, about 1.5× the real width of
 * the sans-serif fonts used, which leaves wide empty margins next to long titles and legends; this uses rough
 * per-character widths of Helvetica / DejaVu Sans instead (Vega supports a user-defined textMetrics.width).
 */
export function estimateTextWidth(text: string, fontSize: number, bold = false): number {
  let em = 0;
  for (const ch of text) {
    if ("iljI.,:;'|!".includes(ch)) em += 0.3;
    else if ("ftr()[] ".includes(ch)) em += 0.4;
    else if ("mwMW%@".includes(ch)) em += 0.95;
    else if (ch >= "A" && ch <= "Z") em += 0.72;
    else em += 0.64;
  }
  return Math.ceil(em * fontSize * (bold ? 1.15 : 1));
}

interface TextItem {
  text?: unknown;
  fontSize?: number;
  fontWeight?: string | number;
}

let textMetricsSet = false;
function useTextEstimate(vega: unknown): void {
  if (textMetricsSet) return;
  const tm = (vega as { textMetrics?: { width: (item: TextItem, text?: unknown) => number } }).textMetrics;
  if (!tm) return; // an older/newer Vega without it: its own estimate is used
  tm.width = (item, text) => {
    const t = text ?? item.text;
    const s = Array.isArray(t) ? t.map(String).reduce((a, b) => (b.length > a.length ? b : a), "") : String(t ?? "");
    const w = item.fontWeight;
    return estimateTextWidth(s.trim(), item.fontSize ?? 11, w === "bold" || (typeof w === "number" && w >= 600));
  };
  textMetricsSet = true;
}

/** Renders a Vega-Lite spec to an SVG document (headless: no canvas, no browser). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, vl] = await Promise.all([import("vega"), import("vega-lite")]);
  useTextEstimate(vega);
  // Warnings (e.g. a log scale's clamped domain) would go to the console: only errors, and those throw.
  const quiet = vega.logger(vega.Error);
  const view = new vega.View(vega.parse(vl.compile(spec, { logger: quiet }).spec), { renderer: "none", logger: quiet });
  try {
    const svg = await view.toSVG();
    return svg.startsWith("<?xml") ? svg : `<?xml version="1.0" encoding="UTF-8"?>\n${svg}`;
  } finally {
    view.finalize();
  }
}

/** Rasterizes an SVG to PNG (white background), `scale` × its size in pixels. */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  let Resvg: typeof import("@resvg/resvg-js").Resvg;
  try {
    ({ Resvg } = await import("@resvg/resvg-js"));
  } catch (e) {
    throw new MacLmError(
      "MACLM_NATIVE_MISSING",
      `plots: @resvg/resvg-js has no binary for ${process.platform}-${process.arch} (${(e as Error).message})`,
    );
  }
  const r = new Resvg(svg, {
    background: "white",
    fitTo: { mode: "zoom", value: scale },
    font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" },
  });
  return r.render().asPng();
}

export interface Plot {
  svg: string;
  /** Null when the PNG could not be made (the reason is in `error`); the SVG is still good. */
  png: Buffer | null;
  error?: string;
}

/** Both plots (a key is absent when there is nothing to plot). */
export async function renderPlots(results: Results): Promise<{ retention?: Plot; cost?: Plot }> {
  const out: { retention?: Plot; cost?: Plot } = {};
  const specs: [keyof typeof out, TopLevelSpec | null][] = [
    ["retention", retentionSpec(results)],
    ["cost", costSpec(results)],
  ];
  for (const [name, spec] of specs) {
    if (!spec) continue;
    const svg = await renderSvg(spec);
    try {
      out[name] = { svg, png: await svgToPng(svg) };
    } catch (e) {
      out[name] = { svg, png: null, error: (e as Error).message };
    }
  }
  return out;
}
