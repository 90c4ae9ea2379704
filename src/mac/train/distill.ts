/**
 * Context distillation (Doc-to-LoRA, xRAG; ../shared/design/memory-training.md): the teacher is the same frozen LM
 * with the document *in its context*; the student is the LM modulated by the memory, the document absent. On every
 * question and answer token the student matches the teacher's next-token distribution, a dense signal about what
 * the document says where the answer loss alone gives a few tokens (and a shortcut: learn the answer format).
 *
 *   teacher:  [document ⧺ "\n\n"] ⧺ q ⧺ a ⧺ EOS     (the document's keys/values computed once, as a prefix)
 *   student:  [soft tokens / prefix from memory] ⧺ q ⧺ a ⧺ EOS
 *   position t of q ⧺ a (t < |q ⧺ a| − 1) predicts token t + 1 in both; the teacher's top-k log-probabilities
 *   there are kept (k ≈ 16–32), renormalised to p̂, and the loss is the cross-entropy −Σ_j p̂_j log p_student(j),
 *   i.e. KL(p̂ ‖ p_student) up to the teacher's (constant) entropy, averaged over positions.
 *
 * Targets are computed once per (document, question, answer, prompt) and cached in a SQLite file of the run folder.
 */
import { MacLmError, ShapeError, fmtShape } from "../../errors.js";
import { Tensor, indexSelect, logSoftmax, mul, noGrad, reshape, scope, sum } from "../../tensor/index.js";
import { type MacModel, prefixMask } from "../model.js";
import { qaRows } from "../qa-batch.js";
import { KeyedStore } from "./keyed-store.js";

/** How the teacher (and the in-context ceiling) puts a document before the question. */
export const CONTEXT_SEPARATOR = "\n\n";
/** The longest document the teacher reads, in base-LM tokens (SQuAD paragraphs: ~150 on average). */
export const MAX_CONTEXT_TOKENS = 512;

export interface DistillExample {
  document: string;
  question: string;
  answer: string;
}

/** The teacher's top-k next-token log-probabilities at the n student positions of one example. */
export interface TeacherTargets {
  n: number;
  k: number;
  ids: Int32Array; // (n, k)
  logp: Float32Array; // (n, k) teacher log-probabilities (not renormalised)
}

/**
 * Document tokens as the teacher reads them before the question (cropped to MAX_CONTEXT_TOKENS): where the model's
 * memory is read as text in a frame (the extractive memory's tokens modulation), the whole document in that frame.
 */
export function contextIds(mac: MacModel, document: string): number[] {
  const frame = mac.contextFrame ?? { before: "", after: CONTEXT_SEPARATOR };
  const enc = (t: string): number[] => mac.baseTokenizer.encode(t, { addSpecialTokens: false });
  const [pre, doc, post] = [enc(frame.before), enc(document.trim()), enc(frame.after)];
  const room = Math.max(1, MAX_CONTEXT_TOKENS - pre.length - post.length);
  return [...pre, ...doc.slice(0, room), ...post];
}

/**
 * Teacher targets for examples (grouped by document: its keys/values are computed once for all its questions).
 * No gradients; the base LM's weights are not touched.
 */
export function teacherTargets(mac: MacModel, examples: readonly DistillExample[], k = 32): TeacherTargets[] {
  const out = new Array<TeacherTargets>(examples.length);
  const byDoc = new Map<string, number[]>();
  examples.forEach((e, i) => byDoc.set(e.document, [...(byDoc.get(e.document) ?? []), i]));
  const lm = mac.base;
  noGrad(() => {
    for (const [doc, idx] of byDoc)
      scope(() => {
        const ctx = contextIds(mac, doc);
        const cache = lm.newCache(1);
        lm.hidden({ ids: Tensor.from(Int32Array.from(ctx), [1, ctx.length], "int32"), cache }); // fills the cache
        const rows = qaRows(
          mac.baseTokenizer,
          idx.map((i) => mac.prompt(examples[i]!.question)),
          idx.map((i) => examples[i]!.answer),
          { maxLength: mac.maxQaLength },
        );
        const L = Math.max(...rows.map((r) => r.q.length + r.a.length));
        const B = rows.length;
        const ids = Tensor.full([B, L], mac.baseTokenizer.padId ?? mac.baseTokenizer.eosId!, "int32");
        const mask = Tensor.zeros([B, L]);
        rows.forEach((r, b) => {
          const seq = [...r.q, ...r.a];
          seq.forEach((t, j) => {
            ids.data[b * L + j] = t;
            mask.data[b * L + j] = 1;
          });
        });
        const logits = lm.forward({
          ids,
          attentionMask: prefixMask(mask, ctx.length),
          modulation: { prefix: cache.layers },
        }); // (B, L, V)
        const V = logits.dim(2);
        rows.forEach((r, b) => {
          const n = r.q.length + r.a.length - 1;
          out[idx[b]!] = topK(logits.data as Float32Array, b * L * V, n, V, k);
        });
        cache.layers.forEach(({ k: kk, v }) => (kk.dispose(), v.dispose()));
      });
  });
  return out;
}

/** Top-k log-softmax entries of n consecutive rows of V logits starting at `offset`. */
function topK(data: Float32Array, offset: number, n: number, V: number, k: number): TeacherTargets {
  const ids = new Int32Array(n * k);
  const logp = new Float32Array(n * k);
  const bestV = new Float64Array(k);
  const bestI = new Int32Array(k);
  for (let t = 0; t < n; t++) {
    const row = offset + t * V;
    let max = -Infinity;
    for (let j = 0; j < V; j++) if (data[row + j]! > max) max = data[row + j]!;
    let z = 0;
    for (let j = 0; j < V; j++) z += Math.exp(data[row + j]! - max);
    const logZ = max + Math.log(z);
    bestV.fill(-Infinity);
    for (let j = 0; j < V; j++) {
      const x = data[row + j]!;
      if (x <= bestV[k - 1]!) continue;
      let p = k - 1; // insertion into the descending list
      while (p > 0 && bestV[p - 1]! < x) {
        bestV[p] = bestV[p - 1]!;
        bestI[p] = bestI[p - 1]!;
        p--;
      }
      bestV[p] = x;
      bestI[p] = j;
    }
    for (let j = 0; j < k; j++) {
      ids[t * k + j] = bestI[j]!;
      logp[t * k + j] = bestV[j]! - logZ;
    }
  }
  return { n, k, ids, logp };
}

/**
 * The distillation loss of student logits (B, L, V) (row b's q ⧺ a at positions 0…) against the teachers' targets:
 * mean over positions of −Σ_j p̂_j log p_student(j); also the mean KL(p̂ ‖ p_student) for logging.
 */
export function distillLoss(logits: Tensor, targets: readonly TeacherTargets[]): { loss: Tensor; kl: () => number } {
  const [B, L, V] = logits.shape as [number, number, number];
  if (logits.ndim !== 3 || targets.length !== B)
    throw new ShapeError("distillLoss", `logits ${fmtShape(logits.shape)} for ${targets.length} examples`);
  let N = 0;
  for (const t of targets) {
    if (t.n > L) throw new ShapeError("distillLoss", `targets for ${t.n} positions, logits have ${L}`);
    N += t.n * t.k;
  }
  const idx = Tensor.zeros([N], "int32");
  const w = Tensor.zeros([N, 1], logits.dtype);
  let negEntropy = 0;
  let positions = 0;
  let o = 0;
  targets.forEach((t, b) => {
    for (let p = 0; p < t.n; p++) {
      let z = 0;
      for (let j = 0; j < t.k; j++) z += Math.exp(t.logp[p * t.k + j]!);
      for (let j = 0; j < t.k; j++) {
        const q = Math.exp(t.logp[p * t.k + j]!) / z;
        idx.data[o] = (b * L + p) * V + t.ids[p * t.k + j]!;
        w.data[o] = q;
        negEntropy += q * Math.log(q);
        o++;
      }
      positions++;
    }
  });
  if (positions === 0) throw new MacLmError("MACLM_BAD_ARGUMENT", "distillLoss: no positions to distil");
  const lp = reshape(logSoftmax(reshape(logits, [B * L, V])), [B * L * V, 1]);
  const ce = mul(sum(mul(indexSelect(lp, idx), w)), Tensor.scalar(-1 / positions, logits.dtype)); // scalar
  return { loss: ce, kl: () => ce.item() + negEntropy / positions };
}

/** A durable cache of teacher targets by example (keyed-store.ts). */
export class TeacherStore extends KeyedStore<{ n: number; k: number; ids: Buffer; logp: Buffer }> {
  constructor(path: string, key: string) {
    super(path, key, "targets", ["n INTEGER", "k INTEGER", "ids BLOB", "logp BLOB"]);
  }

  /** Targets for examples: cached ones read back, the others computed with `compute` and stored. */
  fetch(
    examples: readonly DistillExample[],
    k: number,
    compute: (missing: DistillExample[]) => TeacherTargets[],
  ): TeacherTargets[] {
    const ids = examples.map((e) => this.id(k, e.document, e.question, e.answer));
    const out: (TeacherTargets | undefined)[] = ids.map((id) => {
      const r = this.read(id);
      if (!r) return undefined;
      return {
        n: r.n,
        k: r.k,
        ids: new Int32Array(r.ids.buffer.slice(r.ids.byteOffset, r.ids.byteOffset + r.ids.byteLength)),
        logp: new Float32Array(r.logp.buffer.slice(r.logp.byteOffset, r.logp.byteOffset + r.logp.byteLength)),
      };
    });
    const missing = out.flatMap((t, i) => (t ? [] : [i]));
    if (missing.length > 0) {
      const computed = compute(missing.map((i) => examples[i]!));
      this.write(
        missing.map((i, j) => {
          const t = computed[j]!;
          out[i] = t;
          return [ids[i]!, t.n, t.k, Buffer.from(t.ids.buffer), Buffer.from(t.logp.buffer)];
        }),
      );
    }
    return out as TeacherTargets[];
  }
}
