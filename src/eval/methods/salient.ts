/**
 * Salient spans (CaMeLS's "SSM" baseline, mac-reference 6.1): the parts of a document worth memorising — names and
 * dates — found by an NLP tagger, mapped to the base LM's tokens.
 *
 * The reference tags with spaCy en_core_web_sm named entities, dropping TIME, PERCENT, MONEY, QUANTITY, ORDINAL and
 * CARDINAL: what remains are names (PERSON, ORG, GPE, LOC, NORP, FAC, PRODUCT, EVENT, WORK_OF_ART, LAW, LANGUAGE)
 * and DATE. Here the tagger is compromise (npm, pure JavaScript, rule- and lexicon-based), read per term:
 *   - names: terms tagged ProperNoun, Person, Place, Organization or Acronym;
 *   - dates: terms tagged Date, Month, WeekDay or Year (not a bare Duration noun such as "year" or "season"), plus
 *     the numbers of a "March 5, 1831" / "5 March 1831" date and decades ("1830s");
 *   - numbers (off by default, as in the reference): terms tagged Value (cardinals, ordinals, money, percentages).
 * compromise is not spaCy: recall on rare names and precision on capitalised common words differ, so the token sets
 * are close to, not identical with, the reference's.
 *
 * A token is salient if its character span (tokenSpans) overlaps a salient span — the reference's max over the
 * token's characters.
 */
import nlp from "compromise";
import type { Tokenizer } from "../../tokenizers/index.js";
import { tokenSpans } from "../../tokenizers/offsets.js";

export type SalientCategory = "names" | "dates" | "numbers";

export interface SalientOptions {
  /** Default ["names", "dates"] (the reference's entity types). */
  categories?: readonly SalientCategory[];
}

export interface SalientSpan {
  start: number;
  end: number;
  text: string;
  category: SalientCategory;
}

interface JsonTerm {
  text: string;
  tags: string[];
  offset?: { start: number; length: number };
}

const NAME_TAGS = ["ProperNoun", "Person", "Place", "Organization", "Acronym"];
const DATE_TAGS = ["Date", "Month", "WeekDay", "Year"];
const DECADE = /^(1[0-9]|20)?[0-9]0s$/;

function termCategory(t: JsonTerm, prev: JsonTerm | undefined, next: JsonTerm | undefined): SalientCategory | null {
  const has = (x: JsonTerm | undefined, tags: readonly string[]): boolean =>
    x !== undefined && tags.some((g) => x.tags.includes(g));
  if (has(t, DATE_TAGS) && !(t.tags.includes("Duration") && !has(t, ["Month", "WeekDay", "Year"]))) return "dates";
  if (DECADE.test(t.text)) return "dates";
  // The day and year of "March 5, 1831" / "5 March 1831" (compromise tags only some of them Date).
  if (t.tags.includes("Cardinal") && (has(prev, ["Month"]) || has(next, ["Month"]))) return "dates";
  if (
    t.tags.includes("Cardinal") &&
    /^[0-9]{4}$/.test(t.text) &&
    prev?.tags.includes("Cardinal") &&
    prev.tags.includes("Date")
  )
    return "dates";
  if (has(t, NAME_TAGS)) return "names";
  if (t.tags.includes("Value")) return "numbers";
  return null;
}

/** Salient character spans of `text`, in order; adjacent terms separated only by whitespace are merged. */
export function salientSpans(text: string, opts: SalientOptions = {}): SalientSpan[] {
  const wanted = new Set<SalientCategory>(opts.categories ?? ["names", "dates"]);
  const sentences = nlp(text).json({ offset: true, terms: { offset: true, tags: true } }) as { terms: JsonTerm[] }[];
  const terms = sentences.flatMap((s) => s.terms);
  const out: SalientSpan[] = [];
  let cursor = 0;
  terms.forEach((t, i) => {
    if (t.text.length === 0) return;
    // compromise's offsets index the original text; verify, and fall back to searching from the last term.
    let start = t.offset?.start ?? -1;
    if (start < 0 || text.slice(start, start + t.text.length) !== t.text) start = text.indexOf(t.text, cursor);
    if (start < 0) return;
    const end = start + t.text.length;
    cursor = end;
    const cat = termCategory(t, terms[i - 1], terms[i + 1]);
    if (cat === null || !wanted.has(cat)) return;
    const last = out[out.length - 1];
    if (last && last.end <= start && /^\s*$/.test(text.slice(last.end, start))) {
      last.end = end;
      last.text = text.slice(last.start, end);
    } else out.push({ start, end, text: t.text, category: cat });
  });
  return out;
}

/**
 * Weight 1 for every token of `ids` (the encoding of `text`) whose characters overlap a salient span, else 0;
 * and the spans found.
 */
export function salientTokenWeights(
  tok: Pick<Tokenizer, "decode">,
  text: string,
  ids: readonly number[],
  opts: SalientOptions = {},
): { weights: Float32Array; spans: SalientSpan[] } {
  const spans = salientSpans(text, opts);
  const weights = new Float32Array(ids.length);
  if (spans.length === 0) return { weights, spans };
  const tokSpans = tokenSpans(tok, text, ids);
  let j = 0;
  tokSpans.forEach(([s, e], i) => {
    if (e <= s) return;
    while (j < spans.length && spans[j]!.end <= s) j++;
    for (let k = j; k < spans.length && spans[k]!.start < e; k++)
      if (spans[k]!.end > s) {
        weights[i] = 1;
        break;
      }
  });
  return { weights, spans };
}
