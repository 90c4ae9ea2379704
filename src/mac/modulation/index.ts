/**
 * Modulation generators: the aggregated latent z (B, T, d) → a Modulation of the frozen LM (types.ts), built
 * from the LM's geometry only (never its family).
 *   "prefix"         the reference's P-tuning v2 prefix, one FFN per prefix position (prefix.ts)
 *   "prefix-shared"  the same with one shared FFN plus a position embedding (prefix.ts)
 *   "lora"           per-example LoRA updates of the attention projections (lora.ts)
 */
import type { ModelGeometry } from "../../models/types.js";
import { LoraModulation, type LoraModulationOptions } from "./lora.js";
import { type ModulationGenerator, PrefixModulation, type PrefixOptions, SharedPrefixModulation } from "./prefix.js";

export { LoraModulation, loraFeatures, type LoraModulationOptions } from "./lora.js";
export {
  PrefixModulation,
  SharedPrefixModulation,
  positionsToLayerKV,
  prefixGeometry,
  type ModulationGenerator,
  type PrefixGeometry,
  type PrefixOptions,
} from "./prefix.js";
export { repeatCounts, repeatIndices } from "./repeat.js";

export type ModulationKind = "prefix" | "prefix-shared" | "lora";

export type ModulationOptions =
  | ({ kind: "prefix" } & PrefixOptions)
  | ({ kind: "prefix-shared" } & PrefixOptions & { posStd?: number })
  | ({ kind: "lora" } & LoraModulationOptions);

/** The generator of `opts.kind` for an LM of geometry g and a latent of width latentDim. */
export function createModulation(g: ModelGeometry, latentDim: number, opts: ModulationOptions): ModulationGenerator {
  switch (opts.kind) {
    case "prefix":
      return new PrefixModulation(g, latentDim, opts);
    case "prefix-shared":
      return new SharedPrefixModulation(g, latentDim, opts);
    case "lora":
      return new LoraModulation(g, latentDim, opts);
  }
}
