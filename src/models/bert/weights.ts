/**
 * Loading BERT weights from a Hugging Face checkpoint: our parameter names are BertModel's. Also accepted:
 * checkpoints of BertFor* heads ("bert." prefix; the heads' own entries "cls.*", "classifier.*", "qa_outputs.*"
 * are ignored), the old TF-converted LayerNorm names (gamma/beta), and the position_ids buffer that older
 * transformers saved. The pooler is loaded when the checkpoint has one (loadBert builds the model accordingly).
 */
import { type WeightSource, fillParameters } from "../checkpoint.js";
import { loadSafetensorsFolder, readHfConfig } from "../hf-folder.js";
import { bertConfigFromJson } from "./config.js";
import { BertModel } from "./model.js";

/** Entries that are not BertModel parameters. */
const IGNORED = /(^|\.)embeddings\.position_ids$|^(cls|classifier|qa_outputs)\./;

/** Copies a checkpoint into `model` (see the module comment). */
export function loadBertWeights(model: BertModel, src: WeightSource): void {
  const prefixed = src.names.some((n) => n.startsWith("bert."));
  const have = new Set(src.names);
  const keyOf = (p: string): string => {
    const k = prefixed ? `bert.${p}` : p;
    if (have.has(k)) return k;
    // TF-era names: LayerNorm.gamma / LayerNorm.beta.
    const old = k.replace(/LayerNorm\.weight$/, "LayerNorm.gamma").replace(/LayerNorm\.bias$/, "LayerNorm.beta");
    return have.has(old) ? old : k;
  };
  const stripped = (n: string): string => (prefixed ? n.replace(/^bert\./, "") : n);
  fillParameters(model, src, {
    keyOf,
    ignore: (n) => IGNORED.test(stripped(n)) || (model.pooler === null && stripped(n).startsWith("pooler.")),
  });
}

export interface LoadBertOptions {
  /** Freeze every weight (requiresGrad = false). */
  freeze?: boolean;
  /** Build and load the pooler (default: when the checkpoint has pooler weights). */
  pooler?: boolean;
}

/**
 * A BertModel from a Hugging Face folder (config.json + model.safetensors or a sharded index), in evaluation
 * mode (dropout off), as from_pretrained gives it. sentence-transformers folders (all-MiniLM-L6-v2) keep the
 * transformer at their root, so the same call loads them.
 */
export function loadBert(dir: string, opts: LoadBertOptions = {}): BertModel {
  const { json, source } = readHfConfig(dir, "bert");
  const config = bertConfigFromJson(json, source);
  return loadSafetensorsFolder(
    dir,
    (names) =>
      new BertModel(config, { pooler: opts.pooler ?? names.some((n) => /^(bert\.)?pooler\.dense\.weight$/.test(n)) }),
    loadBertWeights,
    opts,
  );
}
