/**
 * The reference's rule for spreading T latent tokens over A positions (models/module/self_attention.py,
 * TokenSelfAttend): r = A // T, rem = A % T; the first rem tokens are repeated r + 1 times and the other T − rem
 * tokens r times, consecutively ([t0, t0, t1, t1, …]). A = 24, T = 12 (distilgpt2) gives r = 2; A = 128, T = 24
 * (Llama-2) gives 8 tokens × 6 then 16 tokens × 5.
 *
 * Where the release skips the repeat (r ≤ 1) this rule agrees with it whenever the release runs: r = 1, rem = 0
 * is the identity and A < T keeps the first A tokens; with r = 1, rem > 0 the release fails (it indexes past the
 * T tokens), here the first rem tokens appear twice.
 */
import { MacLmError } from "../../errors.js";
import { Tensor } from "../../tensor/index.js";

/** How many times each of the T tokens appears among the A positions. */
export function repeatCounts(numTokens: number, numPositions: number): number[] {
  if (!Number.isInteger(numTokens) || numTokens < 1 || !Number.isInteger(numPositions) || numPositions < 1)
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `repeatCounts: token and position counts must be positive integers, got T = ${numTokens}, A = ${numPositions}`,
    );
  const r = Math.floor(numPositions / numTokens);
  const rem = numPositions % numTokens;
  return Array.from({ length: numTokens }, (_, i) => r + (i < rem ? 1 : 0));
}

/** The token index feeding each of the A positions, in order. */
export function repeatIndices(numTokens: number, numPositions: number): number[] {
  return repeatCounts(numTokens, numPositions).flatMap((c, i) => new Array<number>(c).fill(i));
}

/** repeatIndices as an int32 tensor (A), for indexSelect. */
export function repeatIndexTensor(numTokens: number, numPositions: number): Tensor {
  return Tensor.from(Int32Array.from(repeatIndices(numTokens, numPositions)), [numPositions], "int32");
}
