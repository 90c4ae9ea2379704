import { describe, expect, it } from "vitest";
import { MacLmError } from "../errors.js";
import { type SyntheticStream, type SyntheticStreamOptions, syntheticStream, tinyVocabulary } from "./synthetic.js";

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
/** `answer` as a whole-word, case-insensitive match. */
const wordRe = (answer: string): RegExp => new RegExp(`(?<![A-Za-z0-9])${escape(answer)}(?![A-Za-z0-9])`, "i");

/** Checks every guarantee that holds within one stream. */
function checkStream(s: SyntheticStream, o: SyntheticStreamOptions): void {
  expect(s.documents.length).toBe(o.numDocs);
  expect(s.questions.length).toBe(o.numDocs * o.questionsPerDoc);
  const docs = new Map(s.documents.map((d) => [d.id, d]));
  expect(docs.size).toBe(s.documents.length); // unique doc ids
  expect(new Set(s.questions.map((q) => q.id)).size).toBe(s.questions.length);
  const perDoc = new Map<string, number>();
  for (const q of s.questions) {
    const doc = docs.get(q.docId);
    expect(doc, `question ${q.id} links to a document`).toBeDefined();
    perDoc.set(q.docId, (perDoc.get(q.docId) ?? 0) + 1);
    expect(q.answers.length).toBeGreaterThan(0);
    expect(q.question).toContain(doc!.subject);
    for (const a of q.answers) {
      expect(doc!.text, `answer "${a}" of ${q.id}`).toContain(a); // a verbatim span
      expect(a.split(" ").length).toBeLessThanOrEqual(4);
      const re = wordRe(a);
      for (const other of s.documents)
        if (other.id !== q.docId && re.test(other.text))
          expect.fail(`answer "${a}" of ${q.id} also in ${other.id}: ${other.text}`);
    }
  }
  for (const d of s.documents) expect(perDoc.get(d.id) ?? 0).toBe(o.questionsPerDoc);
  // No two documents state a relation of the same entity: every entity is mentioned by one document only.
  const owner = new Map<string, string>();
  for (const d of s.documents)
    for (const e of d.entities) {
      if (owner.has(e)) expect.fail(`entity ${e} in ${owner.get(e)} and ${d.id}`);
      owner.set(e, d.id);
    }
  // No question repeats a relation of a document's subject.
  const keys = s.questions.map((q) => `${q.docId}/${q.relation}`);
  expect(new Set(keys).size).toBe(keys.length);
}

/** Words of entity names that name kinds of things, shared by all streams ("Mount X", "X River", "X Mills"…). */
const SHARED_NAME_WORDS = new Set([
  "University",
  "of",
  "Institute",
  "College",
  "River",
  "Mount",
  "Industries",
  "Works",
  "Holdings",
  "Trading",
  "Company",
  "Foundry",
  "Mills",
  "Shipping",
  "Instruments",
  "crown",
  "mark",
  "florin",
  "shilling",
  "thaler",
  "dinar",
]);

/** The invented words of a stream's entity names. */
function nameWords(s: SyntheticStream): Set<string> {
  const words = new Set<string>();
  for (const d of s.documents)
    for (const e of d.entities) for (const w of e.split(" ")) if (!SHARED_NAME_WORDS.has(w)) words.add(w);
  return words;
}

describe("syntheticStream", () => {
  const base: SyntheticStreamOptions = { seed: 7, numDocs: 300, factsPerDoc: 5, questionsPerDoc: 3, split: "train" };

  it("is deterministic per seed and differs across seeds and splits", () => {
    const a = syntheticStream(base);
    expect(syntheticStream(base)).toEqual(a);
    const b = syntheticStream({ ...base, seed: 8 });
    expect(b.documents[0]!.text).not.toBe(a.documents[0]!.text);
    const t = syntheticStream({ ...base, split: "test" });
    expect(t.documents[0]!.text).not.toBe(a.documents[0]!.text);
    expect(a.documents[0]!.id).toBe("syn-train-7-000");
  });

  it("natural documents: facts, linkage, answers unique to their document", () => {
    for (const o of [
      base,
      { ...base, seed: 3, numDocs: 200, factsPerDoc: 6, questionsPerDoc: 4 },
      { ...base, numDocs: 50, factsPerDoc: 1, questionsPerDoc: 1 },
    ]) {
      const s = syntheticStream(o);
      checkStream(s, o);
      for (const d of s.documents) {
        expect(d.text.split(/(?<=\.) /).length, d.text).toBe(o.factsPerDoc); // one sentence per fact
        expect(d.text.split(/(?<=\.) /)[0]).toContain(d.subject); // the first sentence names the subject
      }
    }
    const s = syntheticStream(base);
    const kinds = new Set(s.documents.map((d) => d.kind));
    expect([...kinds].sort()).toEqual(["city", "company", "country", "person"]);
    // Relations with repeatable answers (years, occupations…) are asked about too when their answer is unique.
    expect(new Set(s.questions.map((q) => q.relation)).size).toBeGreaterThan(20);
  });

  it("train, val and test streams share no entity and no name word", () => {
    const tr = syntheticStream(base);
    const va = syntheticStream({ ...base, split: "val", numDocs: 100 });
    const te = syntheticStream({ ...base, split: "test" });
    checkStream(te, base);
    const [wtr, wva, wte] = [nameWords(tr), nameWords(va), nameWords(te)];
    expect(wtr.size).toBeGreaterThan(1000);
    for (const w of wte) if (wtr.has(w) || wva.has(w)) expect.fail(`name word ${w} in two splits`);
    for (const w of wva) if (wtr.has(w)) expect.fail(`name word ${w} in train and val`);
    // Name-valued test answers never occur in the train stream.
    const trainText = tr.documents.map((d) => d.text).join("\n");
    for (const q of te.questions)
      if (/^[A-Z]/.test(q.answers[0]!)) expect(wordRe(q.answers[0]!).test(trainText), q.answers[0]).toBe(false);
  });

  it("tiny vocabulary: short lowercase documents over a fixed word list", () => {
    const o: SyntheticStreamOptions = {
      seed: 1,
      numDocs: 64,
      factsPerDoc: 2,
      questionsPerDoc: 1,
      split: "train",
      vocabulary: "tiny",
    };
    const s = syntheticStream(o);
    checkStream(s, o);
    const vocab = new Set(tinyVocabulary());
    expect(vocab.size).toBe(tinyVocabulary().length);
    for (const d of s.documents) {
      const words = d.text.split(" ");
      expect(words.length).toBeLessThanOrEqual(12);
      for (const w of words) expect(vocab.has(w), w).toBe(true);
    }
    for (const q of s.questions) for (const w of q.question.split(" ")) expect(vocab.has(w), w).toBe(true);
    const one = syntheticStream({ ...o, factsPerDoc: 1 });
    expect(one.documents[0]!.text).toMatch(/^[a-z]{4} [a-z ]+ [a-z]{4} \.$/);
    const test = syntheticStream({ ...o, split: "test" });
    const trainNames = new Set(s.documents.flatMap((d) => d.entities));
    for (const d of test.documents) for (const e of d.entities) expect(trainNames.has(e)).toBe(false);
  });

  it("rejects bad options and says when names run out", () => {
    const bad = (o: Partial<SyntheticStreamOptions>, part: string): void => {
      let err: unknown;
      try {
        syntheticStream({ ...base, ...o });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(MacLmError);
      expect((err as Error).message).toContain(part);
    };
    bad({ factsPerDoc: 7 }, "factsPerDoc");
    bad({ factsPerDoc: 0 }, "factsPerDoc");
    bad({ factsPerDoc: 2, questionsPerDoc: 3 }, "questionsPerDoc");
    bad({ questionsPerDoc: 5, factsPerDoc: 6 }, "questionsPerDoc");
    bad({ numDocs: -1 }, "numDocs");
    bad({ split: "dev" as "train" }, "split");
    bad(
      { vocabulary: "tiny", split: "val", numDocs: 400, factsPerDoc: 6, questionsPerDoc: 1 },
      "ran out of tiny names",
    );
    expect(syntheticStream({ ...base, numDocs: 0 })).toEqual({ documents: [], questions: [] });
  });
});
