/**
 * The base LM's LoRA adapter: a fresh one is the base LM exactly; applied as a modulation it equals its merge into
 * the weights (so training, which differentiates the modulation, and loading, which merges, are the same LM); a few
 * Adam steps through it lower an answer loss; the file round-trips, is refused with the reason when it does not fit
 * the model, and loadBase merges it (checksum-checked) for every caller.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { expectClose } from "../../test/helpers/numeric.js";
import { writeChecksums } from "../io/checksums.js";
import { saveSafetensors } from "../io/safetensors.js";
import { loadBase } from "../mac/build.js";
import { parseConfig } from "../mac/config.js";
import { AdamW, Tensor, crossEntropy, grad, scope, untrack } from "../tensor/index.js";
import { randint, randn } from "../tensor/random.js";
import {
  adapterModulation,
  adapterParameters,
  createLoraAdapter,
  disposeLoraAdapter,
  loadLoraAdapter,
  loraTargetWeight,
  mergeLoraAdapter,
  saveLoraAdapter,
} from "./adapter.js";
import { loadCausalLM } from "./load.js";

const dir = mkdtempSync(join(tmpdir(), "mac-lm-adapter-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fresh adapter with B set to random values, so that it changes the model. */
function randomAdapter(model: ReturnType<typeof loadCausalLM>, seed: number): ReturnType<typeof createLoraAdapter> {
  const adapter = createLoraAdapter(model, { rank: 4, alpha: 8, targets: ["q", "k", "v", "o"] }, seed);
  adapter.layers.forEach((layer, l) =>
    Object.values(layer).forEach((d, i) => d.b.data.set(randn(d.b.shape, { seed: seed + 100 * l + i, std: 0.2 }).data)),
  );
  return adapter;
}

describe.each([["gpt2-tiny"], ["llama-tiny"]])("%s", (name) => {
  const fixture = `test/fixtures/models/${name}`;
  const model = loadCausalLM(fixture, { freeze: true });
  const ids = untrack(randint([2, 6], model.vocabSize, { seed: 3 }));
  afterAll(() => {
    model.dispose();
    ids.dispose();
  });

  test("a fresh adapter (B = 0) is the base LM exactly", () => {
    const adapter = createLoraAdapter(model, { rank: 4, alpha: 8, targets: ["q", "v"] });
    scope(() => {
      const base = model.forward({ ids });
      const adapted = model.forward({ ids, modulation: adapterModulation(adapter) });
      expect(Array.from(adapted.data)).toEqual(Array.from(base.data));
    });
    expect(adapterParameters(adapter)).toHaveLength(model.numLayers * 2 * 2);
    disposeLoraAdapter(adapter);
  });

  test("as a modulation it equals its merge into the weights, and the file round-trips", () => {
    const adapter = randomAdapter(model, 10);
    const file = join(dir, `${name}.safetensors`);
    saveLoraAdapter(file, adapter);
    const modulated = scope(() =>
      Float32Array.from(model.forward({ ids, modulation: adapterModulation(adapter) }).data),
    );
    const base = scope(() => Float32Array.from(model.forward({ ids }).data));
    const merged = loadCausalLM(fixture, { freeze: true });
    const loaded = loadLoraAdapter(file, merged);
    expect([loaded.rank, loaded.alpha, loaded.targets]).toEqual([4, 8, ["q", "k", "v", "o"]]);
    adapterParameters(loaded).forEach((t, i) =>
      expect(Array.from(t.data)).toEqual(Array.from(adapterParameters(adapter)[i]!.data)),
    );
    mergeLoraAdapter(merged, loaded);
    const fromMerged = scope(() => Float32Array.from(merged.forward({ ids }).data));
    expectClose(fromMerged, modulated, { rtol: 1e-4, atol: 2e-5 }, "merged vs modulated");
    expect(Math.max(...Array.from(modulated, (x, i) => Math.abs(x - base[i]!)))).toBeGreaterThan(1e-3); // it matters
    merged.dispose();
    disposeLoraAdapter(loaded);
    disposeLoraAdapter(adapter);
  });

  test("Adam steps through the adapter lower an answer loss; the frozen weights stay", () => {
    const adapter = createLoraAdapter(model, { rank: 4, alpha: 8, targets: ["q", "k", "v", "o"] }, 7);
    const params = adapterParameters(adapter);
    const opt = new AdamW(params, { lr: 1e-2, weightDecay: 0 });
    const w0 = Float32Array.from(loraTargetWeight(model, 0, "q").lin.weight.data);
    const targets = Tensor.from(Int32Array.from([-100, -100, -100, 5, 6, 7]), [1, 6], "int32"); // "answer" tokens only
    const row = untrack(Tensor.from(Int32Array.from([1, 2, 3, 4, 5, 6]), [1, 6], "int32"));
    const lossNow = (): Tensor =>
      crossEntropy(model.forward({ ids: row, modulation: adapterModulation(adapter) }), targets);
    const first = scope(() => lossNow().item());
    for (let i = 0; i < 20; i++)
      scope(() => {
        opt.step(grad(lossNow(), params));
      });
    const last = scope(() => lossNow().item());
    expect(last).toBeLessThan(first * 0.8);
    expect(Array.from(loraTargetWeight(model, 0, "q").lin.weight.data)).toEqual(Array.from(w0));
    expect(model.trainableParameters()).toEqual([]);
    disposeLoraAdapter(adapter);
    opt.dispose();
    row.dispose();
  });
});

describe("refusals and loading", () => {
  const gpt2 = loadCausalLM("test/fixtures/models/gpt2-tiny", { freeze: true });
  const llama = loadCausalLM("test/fixtures/models/llama-tiny", { freeze: true });
  afterAll(() => {
    gpt2.dispose();
    llama.dispose();
  });

  test("an adapter that does not fit the model, or is not an adapter, is refused naming the file and the reason", () => {
    const adapter = randomAdapter(llama, 1);
    const file = join(dir, "llama.safetensors");
    saveLoraAdapter(file, adapter);
    const meta = { format: "mac-lm-lora-adapter", rank: "4", alpha: "8", targets: "q,k,v,o" };
    const tensors = new Map(adapterParameters(adapter).map((t) => [t.name!, t] as const));
    const deeper = join(dir, "deeper.safetensors");
    saveSafetensors(deeper, tensors, { ...meta, numLayers: String(llama.numLayers + 1) });
    expect(() => loadLoraAdapter(deeper, llama)).toThrow(
      new RegExp(`deeper\\.safetensors: made for ${llama.numLayers + 1} layers, the base LM has ${llama.numLayers}`),
    );
    const wide = join(dir, "wide.safetensors");
    const a0 = tensors.get("layers.0.q.a")!;
    saveSafetensors(wide, new Map([...tensors, ["layers.0.q.a", Tensor.zeros([1, 4, a0.dim(2) + 1])]]), {
      ...meta,
      numLayers: String(llama.numLayers),
    });
    expect(() => loadLoraAdapter(wide, llama)).toThrow(
      /wide\.safetensors: layers\.0\.q\.a is \(1, 4, \d+\), the base LM needs/,
    );
    const partial = join(dir, "partial.safetensors");
    saveSafetensors(partial, new Map([...tensors].filter(([k]) => k !== "layers.1.o.b")), {
      ...meta,
      numLayers: String(llama.numLayers),
    });
    expect(() => loadLoraAdapter(partial, llama)).toThrow(/partial\.safetensors: tensor layers\.1\.o\.b is missing/);
    disposeLoraAdapter(adapter);
    const notAdapter = join(dir, "not-adapter.safetensors");
    writeFileSync(notAdapter, readFileSync("test/fixtures/models/gpt2-tiny/model.safetensors"));
    expect(() => loadLoraAdapter(notAdapter, gpt2)).toThrow(
      /not-adapter\.safetensors: metadata format is \S+, not mac-lm/,
    );
  });

  test("loadBase merges the adapter, checked against checksums.json; config names it beside config.json", async () => {
    const base = "smollm2-135m-instruct"; // from the model cache: a base LM with its tokenizer
    const ck = mkdtempSync(join(dir, "ck-"));
    const file = join(ck, "base-adapter.safetensors");
    const plain = await loadBase(base);
    const adapter = randomAdapter(plain.model, 2);
    saveLoraAdapter(file, adapter);
    const ids = untrack(Tensor.from(Int32Array.from([3, 1, 4, 1, 5]), [1, 5], "int32"));
    const want = scope(() =>
      Float32Array.from(plain.model.forward({ ids, modulation: adapterModulation(adapter) }).data),
    );
    disposeLoraAdapter(adapter);
    plain.model.dispose();
    writeChecksums(ck, ["base-adapter.safetensors"]);
    const { model } = await loadBase(base, { baseAdapter: file });
    expectClose(
      scope(() => Float32Array.from(model.forward({ ids }).data)),
      want,
      { rtol: 1e-4, atol: 2e-5 },
      "loadBase",
    );
    model.dispose();
    // A damaged adapter file is an error, not a silently different LM.
    const bytes = readFileSync(file);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
    writeFileSync(file, bytes);
    await expect(loadBase(base, { baseAdapter: file })).rejects.toThrow(/base-adapter\.safetensors is damaged/);
    ids.dispose();
    expect(parseConfig({ baseAdapter: "base-adapter.safetensors" }).baseAdapter).toBe("base-adapter.safetensors");
    expect(() => parseConfig({ baseAdapter: "sub/base-adapter.safetensors" }, "cfg.json")).toThrow(
      /baseAdapter.*file name beside config\.json/,
    );
  });
});
