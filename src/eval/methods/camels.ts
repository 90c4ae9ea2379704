/**
 * CaMeLS (Hu et al. 2023; mac-reference 6.1) is not run by mac-lm eval: this says why, for the report. There is no
 * stand-in method: a weight model that was not meta-trained would be a different baseline under CaMeLS's name.
 *
 * At test time CaMeLS is only weighted online fine-tuning (finetune.ts) with token weights from a learned weight
 * model; everything missing is in meta-training that weight model. The numbers below were measured on this project's
 * 2-core development machine with SmolLM2-135M (finetune.ts, one 176-token SQuAD paragraph).
 */

/** Seconds of CPU time for one plain weighted fine-tuning step of SmolLM2-135M on a 176-token document. */
export const PLAIN_STEP_CPU_S = 7.3;

export const CAMELS_UNAVAILABLE =
  "CaMeLS was not run. Its token weights come from a weight model (a trainable distilgpt2 with a 768→128→1 MLP and " +
  "softplus head) that must first be meta-trained: for each document the base LM takes an SGD step on the " +
  "weighted loss (inner lr 5e-4, applied sequentially over 6 documents with the `higher` library), the QA loss of " +
  "the updated model on the documents' questions (+ 0.1 × a KL locality term on OpenWebText) is backpropagated " +
  "through those inner updates into the weight model (Adam 1e-5, grad-acc 4, 50 epochs over the 39,893-pair SQuAD " +
  "training split, a QA-tuned distilgpt2 as base). Differentiating through an update needs gradients of gradients. " +
  "mac-lm's autograd is first-order only: every op's backward runs native kernels on plain tensors (no " +
  "create_graph), so a gradient cannot be differentiated again and no Hessian-vector product through attention, " +
  "norms or the cross-entropy exists. Adding that means a differentiable backward for every op of the base LM. " +
  "(With a single inner step instead of six, the weight gradient needs only first-order gradients plus one " +
  "directional derivative of the per-token losses: dL/dw_t = −(α/D)·∇θℓ_t(θ)·∇θL_QA(θ′). That is a different, " +
  "truncated meta-objective and was not built.) Cost, even with that: a meta-step of 6 documents costs at least 20 plain " +
  `fine-tuning steps of the base LM plus the weight model's passes. A plain SmolLM2-135M step on a 176-token document ` +
  `takes ${PLAIN_STEP_CPU_S} CPU-seconds here (about 4 s on the 2 cores), so one meta-step is ≥ 75 s, one epoch over ` +
  "~8,600 training paragraphs ≈ 1,400 meta-steps ≈ 30 h, and the reference's 50 epochs ≈ 2 months on this machine. " +
  "The reference's own base and weight-model checkpoints are not available offline (no model hub; the model cache " +
  "holds SmolLM2-135M-Instruct and all-MiniLM-L6-v2 only), and neither is its OpenWebText sample.";
