/**
 * `npx tsx dev/train/memory-spread.ts CHECKPOINT [CHECKPOINT...]`: how much of a document survives each stage of the
 * memory path, for two unrelated documents and one question. Prints, per checkpoint, the relative difference
 * ‖a − b‖ / ‖a‖ between the two documents' memory entries, aggregated latents z and the layer-0 / last-layer prefix
 * keys. A memory that training has muted (the entries' or z's document-dependent part drowned by a learned
 * constant) shows small differences there, whatever the answer loss says. CHECKPOINT: a checkpoint folder or a
 * training run folder (its newest checkpoint); to read one step of a run, copy its checkpoints/step-N folder and the
 * run's config.json into a folder of their own. A config file (.json) measures the untrained model it builds.
 */
import { aggregateFull } from "../../src/mac/aggregate/hierarchical.js";
import { buildMac } from "../../src/mac/build.js";
import { readConfig } from "../../src/mac/config.js";
import { loadMac } from "../../src/mac/io.js";
import { type Tensor, noGrad, scope } from "../../src/tensor/index.js";

const DOCS = [
  "The Eiffel Tower was completed in 1889 for the World's Fair in Paris, designed by Gustave Eiffel's company.",
  "Photosynthesis converts light energy into chemical energy in plants, producing oxygen as a by-product.",
];
const QUESTION = "When was the Eiffel Tower completed?";

const relDiff = (a: Tensor, b: Tensor): number => {
  let d = 0;
  let n = 0;
  for (let i = 0; i < a.data.length; i++) {
    d += (a.data[i]! - b.data[i]!) ** 2;
    n += a.data[i]! ** 2;
  }
  return Math.sqrt(d / n);
};
const round = (x: number): number => Math.round(x * 1e5) / 1e5;

for (const ckpt of process.argv.slice(2)) {
  const mac = ckpt.endsWith(".json") ? await buildMac(readConfig(ckpt)) : await loadMac(ckpt);
  mac.eval();
  const r = noGrad(() =>
    scope(() => {
      const [e1, e2] = DOCS.map((d) => mac.amortize([d]));
      const q0 = mac.encodeQuestions([QUESTION]);
      const [z1, z2] = [e1!, e2!].map((e) => aggregateFull(mac.aggregator, q0, e));
      const [p1, p2] = [z1!, z2!].map((z) => mac.modulation.forward(z).prefix!);
      const L = p1!.length - 1;
      return {
        entry: round(relDiff(e1!, e2!)),
        z: round(relDiff(z1!, z2!)),
        prefix_k_layer0: p1 && p2 ? round(relDiff(p1[0]!.k, p2[0]!.k)) : null,
        prefix_k_last: p1 && p2 ? round(relDiff(p1[L]!.k, p2[L]!.k)) : null,
      };
    }),
  );
  console.log(JSON.stringify({ checkpoint: ckpt, relative_difference: r }));
  mac.dispose();
  mac.base.dispose();
}
