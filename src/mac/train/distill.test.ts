import { describe, expect, it } from "vitest";
import { Tensor, noGrad, scope } from "../../tensor/index.js";
import { Rng, randn } from "../../tensor/random.js";
import { expectClose, gradCheck } from "../../../test/helpers/numeric.js";
import { lmSoftMac } from "../../../test/mac/lm-mac.js";
import { TINY_EXAMPLES } from "../../../test/mac/tiny-mac.js";
import { qaRows } from "../qa-batch.js";
import { TeacherStore, contextIds, distillLoss, teacherTargets, type TeacherTargets } from "./distill.js";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Random targets: n_b positions of k distinct ids with log-probabilities. */
function randomTargets(rng: Rng, ns: number[], k: number, V: number): TeacherTargets[] {
  return ns.map((n) => {
    const ids = new Int32Array(n * k);
    const logp = new Float32Array(n * k);
    for (let p = 0; p < n; p++) {
      const pick = rng.shuffle([...Array(V).keys()]).slice(0, k);
      pick.forEach((id, j) => {
        ids[p * k + j] = id;
        logp[p * k + j] = -1 - 3 * rng.uniform();
      });
    }
    return { n, k, ids, logp };
  });
}

describe("distillLoss", () => {
  const B = 2;
  const L = 5;
  const V = 11;
  const k = 4;
  const rng = new Rng(7);
  const targets = randomTargets(rng, [3, 5], k, V);

  it("is −Σ p̂ log softmax(logits) averaged over positions, and KL = that − H(p̂)", () => {
    const logits = randn([B, L, V], { rng, dtype: "float64" });
    const { loss, kl } = distillLoss(logits, targets);
    let ce = 0;
    let h = 0;
    let positions = 0;
    targets.forEach((t, b) => {
      for (let p = 0; p < t.n; p++) {
        const row = Array.from(logits.data.subarray((b * L + p) * V, (b * L + p + 1) * V));
        const lse = Math.log(row.reduce((s, x) => s + Math.exp(x), 0));
        const z = Array.from(t.logp.subarray(p * k, (p + 1) * k)).reduce((s, x) => s + Math.exp(x), 0);
        for (let j = 0; j < k; j++) {
          const q = Math.exp(t.logp[p * k + j]!) / z;
          ce -= q * (row[t.ids[p * k + j]!]! - lse);
          h -= q * Math.log(q);
        }
        positions++;
      }
    });
    expectClose(loss.item(), ce / positions, { atol: 1e-9 });
    expectClose(kl(), (ce - h) / positions, { atol: 1e-6 });
    expect(kl()).toBeGreaterThan(0);
  });

  it("has the gradient of finite differences (float64)", () => {
    const logits = randn([B, L, V], { rng, dtype: "float64" });
    logits.requiresGrad = true;
    gradCheck((x) => distillLoss(x, targets).loss, [logits]);
  });

  it("refuses targets longer than the logits", () => {
    const logits = randn([B, 2, V], { rng });
    expect(() => distillLoss(logits, targets)).toThrow(/positions/);
  });
});

describe("teacherTargets", () => {
  it("equal the top-k of the LM reading document ⧺ question ⧺ answer in one sequence", () => {
    const mac = lmSoftMac();
    const examples = TINY_EXAMPLES.slice(0, 3).flatMap((e) => [
      { document: e.document, question: e.question, answer: e.answers[0]! },
      { document: e.document, question: "who? " + e.question, answer: "no" },
    ]);
    const k = 5;
    const got = teacherTargets(mac, examples, k);
    examples.forEach((e, i) => {
      const ctx = contextIds(mac, e.document);
      const [row] = qaRows(mac.baseTokenizer, [mac.prompt(e.question)], [e.answer], { maxLength: mac.maxQaLength });
      const seq = [...ctx, ...row!.q, ...row!.a];
      const logits = noGrad(() =>
        scope(() => {
          const out = mac.base.forward({ ids: Tensor.from(Int32Array.from(seq), [1, seq.length], "int32") });
          return Float64Array.from(out.data);
        }),
      );
      const V = mac.base.vocabSize;
      const t = got[i]!;
      expect(t.n).toBe(row!.q.length + row!.a.length - 1);
      for (let p = 0; p < t.n; p++) {
        const r = Array.from(logits.subarray((ctx.length + p) * V, (ctx.length + p + 1) * V));
        const lse = Math.log(r.reduce((s, x) => s + Math.exp(x), 0));
        const order = [...r.keys()].sort((a, b) => r[b]! - r[a]!).slice(0, k);
        expect(Array.from(t.ids.subarray(p * k, (p + 1) * k))).toEqual(order);
        expectClose(
          Array.from(t.logp.subarray(p * k, (p + 1) * k)),
          order.map((j) => r[j]! - lse),
          { atol: 1e-4 },
        );
      }
    });
    mac.dispose();
    mac.base.dispose();
  });
});

describe("TeacherStore", () => {
  it("computes each example once and reads it back identical, across reopenings", () => {
    const dir = mkdtempSync(join(tmpdir(), "maclm-teacher-"));
    try {
      const rng = new Rng(3);
      const examples = TINY_EXAMPLES.map((e) => ({
        document: e.document,
        question: e.question,
        answer: e.answers[0]!,
      }));
      const made = randomTargets(rng, [2, 3, 4, 2, 3, 4], 4, 20);
      let calls = 0;
      const compute = (missing: typeof examples): TeacherTargets[] => {
        calls += missing.length;
        return missing.map((m) => made[examples.indexOf(m)]!);
      };
      const s1 = new TeacherStore(join(dir, "t.sqlite"), "tmpl");
      const a = s1.fetch(examples.slice(0, 3), 4, compute);
      s1.close();
      const s2 = new TeacherStore(join(dir, "t.sqlite"), "tmpl");
      const b = s2.fetch(examples, 4, compute);
      s2.close();
      expect(calls).toBe(6); // 3, then the 3 new ones
      expect(b.slice(0, 3)).toEqual(a);
      b.forEach((t, i) => expect(t).toEqual(made[i]));
      // Another template is another teacher: nothing is reused.
      const s3 = new TeacherStore(join(dir, "t.sqlite"), "other");
      s3.fetch(examples.slice(0, 2), 4, compute);
      s3.close();
      expect(calls).toBe(8);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
