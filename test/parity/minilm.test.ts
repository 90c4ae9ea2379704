/**
 * The real sentence-transformers/all-MiniLM-L6-v2 (a 6-layer BertModel, hidden 384) from the model cache, against
 * the sentence embeddings transformers computes for it (reference/dump_minilm.py ->
 * test/fixtures/models/all-minilm-l6-v2.json: mean over unmasked tokens of the last hidden state, then unit L2
 * norm, as the model's sentence-transformers modules say).
 *
 * Tolerance: every embedding component within 2e-6 absolute (components are up to ~0.2; float32 through 6 layers
 * typically leaves ~1e-7), cosine similarity with the expected embedding above 1 − 1e-9, and the [CLS] hidden
 * state within 1e-4 relative + 1e-5 absolute. Skipped, with the reason in the test name, when the model folder is
 * not in the cache.
 */
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import type { BertModel } from "../../src/models/bert/model.js";
import { loadBert } from "../../src/models/bert/weights.js";
import { Tensor, noGrad, scope } from "../../src/tensor/index.js";
import { tokenizerFromHfDir } from "../../src/tokenizers/index.js";
import { cachedFile } from "../helpers/model-cache.js";
import { expectClose } from "../helpers/numeric.js";

interface Expected {
  dir: string;
  sentences: string[];
  ids: number[][];
  mask: number[][];
  embeddings: number[][];
  hidden_cls: number[];
}

const doc = JSON.parse(readFileSync("test/fixtures/models/all-minilm-l6-v2.json", "utf8")) as Expected;
const weights = cachedFile(doc.dir, "model.safetensors");
const tokenizerJson = cachedFile(doc.dir, "tokenizer.json");

describe("all-MiniLM-L6-v2 (model cache)", () => {
  let model: BertModel | null = null;
  const get = (): BertModel => (model ??= loadBert(dirname(weights.path), { freeze: true }));
  afterAll(() => model?.dispose());

  const B = doc.ids.length;
  const Tn = doc.ids[0]!.length;
  const ids = () => Tensor.from(Int32Array.from(doc.ids.flat()), [B, Tn]);
  const mask = () => Tensor.from(doc.mask.flat(), [B, Tn]);

  test.skipIf(!weights.present)(`loads as a 6-layer BertModel, hidden 384, 12 heads${weights.skipNote}`, () => {
    const m = get();
    expect([m.numLayers, m.hiddenSize, m.numHeads, m.vocabSize]).toEqual([6, 384, 12, 30522]);
    expect(m.config.hidden_act).toBe("gelu");
    expect(m.training).toBe(false);
  });

  test.skipIf(!weights.present)(
    `sentence embeddings of ${doc.sentences.length} sentences equal transformers' (|err| <= 2e-6, cos > 1 - 1e-9)${weights.skipNote}`,
    () =>
      noGrad(() =>
        scope(() => {
          const m = get();
          const hidden = m.encode(ids(), mask());
          expectClose(hidden.data.subarray(0, 384), doc.hidden_cls, { rtol: 1e-4, atol: 1e-5 }, "[CLS] hidden state");
          const emb = m.sentenceEmbedding(ids(), mask());
          expect(emb.shape).toEqual([B, 384]);
          expectClose(emb.data, doc.embeddings.flat(), { rtol: 0, atol: 2e-6 }, "sentence embeddings");
          doc.embeddings.forEach((want, b) => {
            let dot = 0;
            let na = 0;
            let nb = 0;
            for (let c = 0; c < 384; c++) {
              const x = emb.data[b * 384 + c]!;
              dot += x * want[c]!;
              na += x * x;
              nb += want[c]! ** 2;
            }
            expect(1 - dot / Math.sqrt(na * nb)).toBeLessThan(1e-9);
          });
        }),
      ),
  );

  test.skipIf(!weights.present || !tokenizerJson.present)(
    `text -> ids with the folder's tokenizer gives the reference ids (unpadded)${weights.present ? tokenizerJson.skipNote : weights.skipNote}`,
    () => {
      const tok = tokenizerFromHfDir(dirname(tokenizerJson.path));
      doc.sentences.forEach((s, b) => {
        const n = doc.mask[b]!.reduce((x, y) => x + y, 0);
        expect(tok.encode(s)).toEqual(doc.ids[b]!.slice(0, n));
      });
    },
  );
});
