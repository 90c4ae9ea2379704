import { describe, expect, it } from "vitest";
import { camelsF1, exactMatch, f1Score, normalizeAnswer, prefixExactMatch, scoreAll, squadScores } from "./qa-metrics.js";

describe("QA metrics", () => {
  it("normalises as the SQuAD script", () => {
    expect(normalizeAnswer("The  Eiffel-Tower!")).toBe("eiffeltower");
    expect(normalizeAnswer("an apple, a pear and the fig")).toBe("apple pear and fig");
  });

  it("EM and F1 as the official SQuAD v1.1 script (values worked by hand)", () => {
    expect(exactMatch("the Denver Broncos", "Denver Broncos")).toBe(1);
    expect(f1Score("Denver Broncos won", "Denver Broncos")).toBeCloseTo(0.8, 12); // p 2/3, r 1
    expect(f1Score("", "")).toBe(1);
    expect(f1Score("x", "")).toBe(0);
    expect(squadScores("Broncos", ["Denver Broncos", "Broncos"])).toEqual({ em: 1, f1: 1 });
  });

  it("MAC/CaMeLS variants: prefix EM, F1 against the shortest answer, 0 for empty", () => {
    expect(prefixExactMatch("Paris, the capital of France", "Paris")).toBe(1);
    expect(prefixExactMatch("It is Paris", "Paris")).toBe(0);
    expect(prefixExactMatch("anything", "the")).toBe(1); // empty gold after normalisation
    expect(camelsF1("", "")).toBe(0);
    const s = scoreAll(["Paris is nice", "no"], [["Paris", "the city of Paris"], ["yes"]]);
    expect(s.em).toBe(0);
    expect(s.em_prefix).toBe(50);
    expect(s.f1_shortest).toBeCloseTo(25, 10); // (2·(1/3)·1/(4/3)) / 2 = 0.25
    expect(s.n).toBe(2);
  });
});
