/**
 * Provenance: which memory entries an answer came from. A question's query tokens attend to the memory tokens in
 * every block of the aggregator; an entry's share is the attention mass its Tm tokens receive, averaged over the
 * question's T query tokens, the heads and the blocks (so the shares of all entries sum to 1).
 *
 * Hierarchical aggregation attends in levels: a level-0 group of ≤ M entries is aggregated into one entry, which
 * competes with the other groups' at level 1, and so on. An entry's share is then its share within its group times
 * its group's share one level up, down the path to the final level (the shares still sum to 1). The levels are the
 * level-by-level loop of hierarchical.ts (consecutive groups of M while more than M entries remain), one aggregator
 * call per group; the answer's latent itself comes from aggregateHierarchical (batched), so this pass is extra
 * work, paid only when sources are asked for.
 */
import { MacLmError, ShapeError, fmtShape } from "../errors.js";
import { type Tensor, concat, noGrad, scope, slice, untrack } from "../tensor/index.js";
import type { MemoryAggregator } from "./aggregate/hierarchical.js";

/** The aggregated latent (Bq, T, d) and each question's share per memory entry (Bq arrays of N, summing to 1). */
export interface SharesResult {
  z: Tensor;
  shares: Float64Array[];
}

/**
 * Full aggregation of a shared memory (N, Tm, d) with every block's attention recorded: the same latent as
 * aggregator.forward(q0, memory) (the same kernels compute it), plus the entry shares. Inference only (noGrad).
 */
export function aggregateWithShares(agg: MemoryAggregator, q0: Tensor, memory: Tensor): SharesResult {
  if (memory.ndim !== 3 || memory.dim(0) === 0)
    throw new ShapeError("aggregateWithShares", `memory ${fmtShape(memory.shape)} must be a non-empty (N, Tm, d)`);
  const [N, Tm] = [memory.dim(0), memory.dim(1)];
  const [Bq, T] = [q0.dim(0), q0.dim(1)];
  const shares = Array.from({ length: Bq }, () => new Float64Array(N));
  const blocks = agg.attentionBlocks;
  const z = noGrad(() =>
    agg.forward(q0, memory, {
      attention: (_block, probs) => {
        // probs (B, L, S): B·L = Bq·T query rows in question order whatever the batching, S = N·Tm.
        const p = probs.f32;
        const S = N * Tm;
        if (probs.dim(2) !== S || probs.dim(0) * probs.dim(1) !== Bq * T)
          throw new ShapeError("aggregateWithShares", `attention ${fmtShape(probs.shape)} for ${Bq}×${T} queries`);
        const w = 1 / (T * blocks);
        for (let b = 0; b < Bq; b++) {
          const out = shares[b]!;
          for (let r = b * T; r < (b + 1) * T; r++)
            for (let e = 0, off = r * S; e < N; e++) {
              let s = 0;
              for (let t = 0; t < Tm; t++, off++) s += p[off]!;
              out[e]! += s * w;
            }
        }
      },
    }),
  );
  return { z, shares };
}

/**
 * One question's share per entry under hierarchical aggregation with groups of M, the bank given as consecutive
 * chunks of exactly M entries (the last may be smaller), e.g. MemoryBank.groups(M). q0 (1, T, d) → N shares.
 */
export function hierarchicalShares(
  agg: MemoryAggregator,
  q0: Tensor,
  chunks: Iterable<Tensor>,
  M: number,
): Float64Array {
  if (!Number.isInteger(M) || M < 2)
    throw new MacLmError("MACLM_BAD_ARGUMENT", `hierarchicalShares: group size M must be an integer ≥ 2, got ${M}`);
  if (q0.dim(0) !== 1)
    throw new ShapeError("hierarchicalShares", `one question at a time: queries ${fmtShape(q0.shape)}`);
  const locals: Float64Array[] = [];
  const outs: Tensor[] = [];
  try {
    for (const chunk of chunks) {
      if (chunk.dim(0) > M)
        throw new ShapeError("hierarchicalShares", `chunk ${fmtShape(chunk.shape)} holds more than M = ${M} entries`);
      const { z, shares } = scope(() => aggregateWithShares(agg, q0, chunk));
      locals.push(shares[0]!);
      outs.push(untrack(z));
    }
    if (outs.length === 0) throw new ShapeError("hierarchicalShares", "the memory bank is empty");
    if (outs.length === 1) return locals[0]!;
    // The group outputs are the next level's entries, in order.
    const upper = scope(() => {
      const level = concat(outs, 0); // (G, T, d)
      const G = outs.length;
      const groups: Tensor[] = [];
      for (let s = 0; s < G; s += M) groups.push(slice(level, 0, s, Math.min(G, s + M)));
      return hierarchicalShares(agg, q0, groups, M);
    });
    const total = locals.reduce((n, l) => n + l.length, 0);
    const out = new Float64Array(total);
    let off = 0;
    locals.forEach((l, g) => {
      for (let i = 0; i < l.length; i++) out[off + i] = l[i]! * upper[g]!;
      off += l.length;
    });
    return out;
  } finally {
    for (const t of outs) t.dispose();
  }
}
