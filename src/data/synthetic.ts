/**
 * A seeded synthetic knowledge stream: documents about fictional entities and questions answered by them, for
 * training and testing MAC without downloading a dataset (the real streams are in mac-reference.md §4).
 *
 *   const { documents, questions } = syntheticStream({ seed: 1, numDocs: 100, factsPerDoc: 4, questionsPerDoc: 2, split: "train" });
 *
 * Each document is about one entity (a person, company, city or country) and states `factsPerDoc` facts about it
 * in natural sentences ("Zorvan Quellit was born in Brenmoor."). Names are built from syllables, so they are
 * invented words (best effort against real names: unusual onsets and word endings), and every word of every name
 * is used once per stream: no two entities share a name or a name word, and no name word equals a word of the
 * sentence templates.
 *
 * Guarantees, for one stream:
 *   - no two documents state the same relation for the same entity (each entity is the subject of one document;
 *     the entities a document mentions, e.g. a founder, appear in no other document);
 *   - every question's answer is a short span (≤ 4 words) of its document, verbatim, and occurs in no other
 *     document of the stream (case-insensitive, at word boundaries); answers that happen to repeat (a year, an
 *     occupation) are stated but never asked about;
 *   - exactly `questionsPerDoc` questions per document (at most 4, and at most factsPerDoc);
 *   - the same options give the same stream on every machine.
 * Splits use disjoint sets of name words (the first letter of a name word says its split), so no entity of the
 * test stream appears in the train stream, and name-valued answers differ between splits. Years, numbers,
 * occupations and products come from vocabularies shared by the splits.
 *
 * vocabulary "tiny" gives documents of a few lowercase tokens separated by spaces ("bako lives in tuzi ."), with
 * two-syllable names and 20 function words (tinyVocabulary() lists every word), for tiny base LMs in fast tests.
 */
import { MacLmError } from "../errors.js";
import { Rng } from "../tensor/random.js";

export type SyntheticSplit = "train" | "val" | "test";

export interface SyntheticStreamOptions {
  seed: number;
  numDocs: number;
  /** Facts stated per document, 1 … 6. */
  factsPerDoc: number;
  /** Questions per document, 0 … min(4, factsPerDoc). */
  questionsPerDoc: number;
  split: SyntheticSplit;
  /** "natural" (default): English sentences. "tiny": a few lowercase tokens per fact, see tinyVocabulary(). */
  vocabulary?: "natural" | "tiny";
}

export interface SyntheticDocument {
  id: string;
  text: string;
  /** The entity the document is about. */
  subject: string;
  /** "person" | "company" | "city" | "country" ("entity" in tiny mode). */
  kind: string;
  /** Every invented name the document mentions, the subject first. */
  entities: string[];
}

export interface SyntheticQuestion {
  id: string;
  docId: string;
  question: string;
  /** Reference answers (one), each a verbatim span of the document. */
  answers: string[];
  relation: string;
}

export interface SyntheticStream {
  documents: SyntheticDocument[];
  questions: SyntheticQuestion[];
}

// ---- names -------------------------------------------------------------------------------------------------

/** First letters of name words, by split: disjoint, so the splits' names are too. */
const NATURAL_ONSETS: Record<SyntheticSplit, string[]> = {
  train: ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kr", "l", "m"],
  val: ["n", "p", "pr", "qu"],
  test: ["r", "s", "st", "t", "th", "tr", "v", "z", "zh", "w"],
};
const INNER_ONSETS = [
  "b",
  "d",
  "f",
  "g",
  "k",
  "l",
  "m",
  "n",
  "p",
  "r",
  "s",
  "t",
  "v",
  "z",
  "th",
  "dr",
  "sk",
  "br",
  "qu",
];
const NUCLEI = ["a", "e", "i", "o", "u", "a", "e", "i", "o", "u", "ae", "ia", "ou", "ei"];
const INNER_CODAS = ["", "", "", "", "", "n", "r", "l", "s"];
const FINAL_CODAS = ["n", "r", "th", "x", "sk", "nd", "rn", "lt", "vd", "rd", "ss", "z", "q"];

const TINY_ONSETS: Record<SyntheticSplit, string[]> = {
  train: ["b", "d", "f", "g", "k", "l", "m"],
  val: ["n", "p"],
  test: ["r", "s", "t", "v", "z"],
};
const TINY_CONSONANTS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"];
const TINY_VOWELS = ["a", "e", "i", "o", "u"];

const capitalise = (w: string): string => w[0]!.toUpperCase() + w.slice(1);

class NameMaker {
  /** Lowercase words already used (template words are reserved up front). */
  private readonly used = new Set<string>();
  constructor(
    private readonly rng: Rng,
    private readonly split: SyntheticSplit,
    private readonly tiny: boolean,
    reserved: Iterable<string>,
  ) {
    for (const w of reserved) this.used.add(w.toLowerCase());
  }

  private pick<T>(xs: readonly T[]): T {
    return xs[this.rng.int(xs.length)]!;
  }

  /** A new word never used in this stream. */
  word(suffix = ""): string {
    for (let attempt = 0; attempt < 1000; attempt++) {
      const w = (this.tiny ? this.tinyWord() : this.naturalWord()) + suffix;
      if (!this.used.has(w)) {
        this.used.add(w);
        return this.tiny ? w : capitalise(w);
      }
    }
    throw new MacLmError(
      "MACLM_BAD_ARGUMENT",
      `syntheticStream: ran out of ${this.tiny ? "tiny" : "natural"} names for split ${this.split} (${this.used.size} used); ask for fewer documents or facts`,
    );
  }

  private naturalWord(): string {
    const syllables = this.rng.uniform() < 0.85 ? 2 : 3;
    let w = this.pick(NATURAL_ONSETS[this.split]) + this.pick(NUCLEI);
    for (let s = 1; s < syllables; s++) w += this.pick(INNER_CODAS) + this.pick(INNER_ONSETS) + this.pick(NUCLEI);
    return w + this.pick(FINAL_CODAS);
  }

  private tinyWord(): string {
    return (
      this.pick(TINY_ONSETS[this.split]) + this.pick(TINY_VOWELS) + this.pick(TINY_CONSONANTS) + this.pick(TINY_VOWELS)
    );
  }
}

// ---- natural-language facts ----------------------------------------------------------------------------------

type Kind = "person" | "company" | "city" | "country";

/**
 * A relation: how its object is made, sentence templates and question templates. In sentences {S} is the subject
 * (its name, or a pronoun after the first sentence), {P} its possessive, {N} always its name, {O} the object;
 * questions always use {N}. `unique`: the object is a fresh name, hence unique in the stream.
 */
interface Relation {
  name: string;
  unique: boolean;
  object: (g: Gen) => string;
  sentences: string[];
  questions: string[];
}

interface Gen {
  names: NameMaker;
  rng: Rng;
}

const OCCUPATIONS = [
  "cartographer",
  "glassblower",
  "astronomer",
  "beekeeper",
  "clockmaker",
  "botanist",
  "sculptor",
  "lighthouse keeper",
  "engineer",
  "violinist",
  "archivist",
  "surveyor",
  "chemist",
  "potter",
  "novelist",
  "shipwright",
  "weaver",
  "architect",
  "pharmacist",
  "journalist",
  "bookbinder",
  "geologist",
  "tailor",
  "translator",
];
const PRODUCTS = [
  "bicycles",
  "glass lenses",
  "paper lanterns",
  "ceramic tiles",
  "sailcloth",
  "pocket watches",
  "telescopes",
  "wool blankets",
  "fishing nets",
  "copper pipes",
  "board games",
  "violins",
  "printing presses",
  "typewriters",
  "saddles",
  "umbrellas",
  "candles",
  "rope",
  "maps",
  "harmonicas",
];
const COMPANY_SUFFIXES = [
  "Industries",
  "Works",
  "Holdings",
  "Trading Company",
  "Foundry",
  "Mills",
  "Shipping",
  "Instruments",
];
const CURRENCY_UNITS = ["crown", "mark", "florin", "shilling", "thaler", "dinar"];

const rint = (rng: Rng, lo: number, hi: number): number => lo + rng.int(hi - lo + 1);
/** 48213 → "48,213" (locale-independent). */
const withCommas = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
const personName = (g: Gen): string => `${g.names.word()} ${g.names.word()}`;
const article = (w: string): string => (/^[aeiou]/.test(w) ? "an" : "a");
const possessiveOf = (name: string): string => (name.endsWith("s") ? `${name}'` : `${name}'s`);

const RELATIONS: Record<Kind, Relation[]> = {
  person: [
    {
      name: "occupation",
      unique: false,
      object: (g) => OCCUPATIONS[g.rng.int(OCCUPATIONS.length)]!,
      sentences: ["{S} is {a} {O}.", "{S} works as {a} {O}."],
      questions: ["What is the occupation of {N}?", "What does {N} do for a living?"],
    },
    {
      name: "birth_place",
      unique: true,
      object: (g) => g.names.word(),
      sentences: ["{S} was born in {O}.", "{S} was born in the village of {O}."],
      questions: ["Where was {N} born?", "In which place was {N} born?"],
    },
    {
      name: "birth_year",
      unique: false,
      object: (g) => String(rint(g.rng, 1850, 2005)),
      sentences: ["{S} was born in the year {O}.", "{P} year of birth is {O}."],
      questions: ["In what year was {N} born?", "When was {N} born?"],
    },
    {
      name: "employer",
      unique: true,
      object: companyName,
      sentences: ["{S} works for {O}.", "{S} is employed by {O}."],
      questions: ["Which company does {N} work for?", "Who employs {N}?"],
    },
    {
      name: "alma_mater",
      unique: true,
      object: institutionName,
      sentences: ["{S} studied at {O}.", "{S} graduated from {O}."],
      questions: ["Where did {N} study?", "Which institution did {N} graduate from?"],
    },
    {
      name: "spouse",
      unique: true,
      object: personName,
      sentences: ["{S} is married to {O}.", "{P} spouse is {O}."],
      questions: ["Who is {N} married to?", "Who is the spouse of {N}?"],
    },
    {
      name: "residence",
      unique: true,
      object: (g) => g.names.word(),
      sentences: ["{S} lives in {O}.", "{S} now lives in the city of {O}."],
      questions: ["Where does {N} live?", "In which city does {N} live?"],
    },
  ],
  company: [
    {
      name: "founder",
      unique: true,
      object: personName,
      sentences: ["{S} was founded by {O}.", "{S} was started by the entrepreneur {O}."],
      questions: ["Who founded {N}?", "Who started {N}?"],
    },
    {
      name: "founding_year",
      unique: false,
      object: (g) => String(rint(g.rng, 1800, 2020)),
      sentences: ["{S} was founded in {O}.", "{S} opened its doors in {O}."],
      questions: ["When was {N} founded?", "In what year was {N} founded?"],
    },
    {
      name: "headquarters",
      unique: true,
      object: (g) => g.names.word(),
      sentences: ["{S} is headquartered in {O}.", "{P} head office is in {O}."],
      questions: ["Where is {N} headquartered?", "Where is the head office of {N}?"],
    },
    {
      name: "product",
      unique: false,
      object: (g) => PRODUCTS[g.rng.int(PRODUCTS.length)]!,
      sentences: ["{S} makes {O}.", "{S} is known for its {O}."],
      questions: ["What does {N} make?", "What products is {N} known for?"],
    },
    {
      name: "chief_executive",
      unique: true,
      object: personName,
      sentences: ["{P} chief executive is {O}.", "{S} is run by {O}."],
      questions: ["Who is the chief executive of {N}?", "Who runs {N}?"],
    },
    {
      name: "employees",
      unique: false,
      object: (g) => withCommas(rint(g.rng, 12, 90_000)),
      sentences: ["{S} employs {O} people.", "{S} has {O} employees."],
      questions: ["How many people does {N} employ?", "How many employees does {N} have?"],
    },
    {
      name: "rival",
      unique: true,
      object: companyName,
      sentences: ["{P} main rival is {O}.", "{S} competes with {O}."],
      questions: ["Which company is the main rival of {N}?", "Which company does {N} compete with?"],
    },
  ],
  city: [
    {
      name: "country",
      unique: true,
      object: (g) => g.names.word(),
      sentences: ["{S} is a city in {O}.", "{S} lies in the country of {O}."],
      questions: ["In which country is {N}?", "Which country is {N} in?"],
    },
    {
      name: "mayor",
      unique: true,
      object: personName,
      sentences: ["{P} mayor is {O}.", "{S} is governed by Mayor {O}."],
      questions: ["Who is the mayor of {N}?", "Who governs {N} as mayor?"],
    },
    {
      name: "founding_year",
      unique: false,
      object: (g) => String(rint(g.rng, 900, 1900)),
      sentences: ["{S} was founded in {O}.", "{S} received its charter in {O}."],
      questions: ["When was {N} founded?", "In what year was {N} founded?"],
    },
    {
      name: "river",
      unique: true,
      object: (g) => `${g.names.word()} River`,
      sentences: ["{S} lies on the {O}.", "{S} was built on the banks of the {O}."],
      questions: ["On which river does {N} lie?", "Which river flows through {N}?"],
    },
    {
      name: "population",
      unique: false,
      object: (g) => withCommas(rint(g.rng, 2_000, 3_000_000)),
      sentences: ["{S} has a population of {O}.", "{S} is home to {O} people."],
      questions: ["What is the population of {N}?", "How many people live in {N}?"],
    },
    {
      name: "twin_city",
      unique: true,
      object: (g) => g.names.word(),
      sentences: ["{S} is twinned with {O}.", "{P} twin city is {O}."],
      questions: ["Which city is {N} twinned with?", "What is the twin city of {N}?"],
    },
  ],
  country: [
    {
      name: "capital",
      unique: true,
      object: (g) => g.names.word(),
      sentences: ["{P} capital is {O}.", "The capital of {N} is {O}."],
      questions: ["What is the capital of {N}?", "Which city is the capital of {N}?"],
    },
    {
      name: "currency",
      unique: true,
      object: (g) => `${g.names.word()} ${CURRENCY_UNITS[g.rng.int(CURRENCY_UNITS.length)]!}`,
      sentences: ["{P} currency is the {O}.", "{S} uses the {O} as its currency."],
      questions: ["What is the currency of {N}?", "Which currency is used in {N}?"],
    },
    {
      name: "language",
      unique: true,
      object: (g) => g.names.word("ish"),
      sentences: ["{P} official language is {O}.", "Most people in {N} speak {O}."],
      questions: ["What language is spoken in {N}?", "What is the official language of {N}?"],
    },
    {
      name: "head_of_state",
      unique: true,
      object: personName,
      sentences: ["{S} is led by President {O}.", "{P} head of state is {O}."],
      questions: ["Who leads {N}?", "Who is the head of state of {N}?"],
    },
    {
      name: "independence_year",
      unique: false,
      object: (g) => String(rint(g.rng, 1800, 2000)),
      sentences: ["{S} became independent in {O}.", "{S} gained its independence in {O}."],
      questions: ["When did {N} become independent?", "In what year did {N} gain independence?"],
    },
    {
      name: "highest_mountain",
      unique: true,
      object: (g) => `Mount ${g.names.word()}`,
      sentences: ["The highest mountain in {N} is {O}.", "{P} highest peak is {O}."],
      questions: ["What is the highest mountain in {N}?", "What is the highest peak in {N}?"],
    },
  ],
};

function companyName(g: Gen): string {
  return `${g.names.word()} ${COMPANY_SUFFIXES[g.rng.int(COMPANY_SUFFIXES.length)]!}`;
}
function institutionName(g: Gen): string {
  const w = g.names.word();
  const form = g.rng.int(3);
  return form === 0 ? `the University of ${w}` : form === 1 ? `${w} Institute` : `${w} College`;
}

const KINDS: [Kind, number][] = [
  ["person", 0.4],
  ["company", 0.25],
  ["city", 0.2],
  ["country", 0.15],
];
const MAX_FACTS = 6;
const MAX_QUESTIONS = 4;

// ---- tiny facts ------------------------------------------------------------------------------------------------

interface TinyRelation {
  name: string;
  sentence: string; // {S} {O}
  question: string; // {N}
}
const TINY_RELATIONS: TinyRelation[] = [
  { name: "lives", sentence: "{S} lives in {O} .", question: "where does {N} live ?" },
  { name: "works", sentence: "{S} works at {O} .", question: "where does {N} work ?" },
  { name: "likes", sentence: "{S} likes {O} .", question: "what does {N} like ?" },
  { name: "owns", sentence: "{S} owns {O} .", question: "what does {N} own ?" },
  { name: "knows", sentence: "{S} knows {O} .", question: "who does {N} know ?" },
  { name: "born", sentence: "{S} was born in {O} .", question: "where was {N} born ?" },
];
const TINY_FUNCTION_WORDS = [
  ".",
  "?",
  "lives",
  "in",
  "works",
  "at",
  "likes",
  "owns",
  "knows",
  "was",
  "born",
  "where",
  "what",
  "who",
  "does",
  "live",
  "work",
  "like",
  "own",
  "know",
];

/** Every word a tiny-vocabulary stream can contain (function words, then all names of all splits), space-separated in texts. */
export function tinyVocabulary(): string[] {
  const names: string[] = [];
  const reserved = new Set(TINY_FUNCTION_WORDS);
  for (const split of ["train", "val", "test"] as const)
    for (const a of TINY_ONSETS[split])
      for (const b of TINY_VOWELS)
        for (const c of TINY_CONSONANTS)
          for (const d of TINY_VOWELS) {
            const w = a + b + c + d;
            if (!reserved.has(w)) names.push(w);
          }
  return [...TINY_FUNCTION_WORDS, ...names];
}

// ---- the stream ------------------------------------------------------------------------------------------------

interface Fact {
  relation: string;
  answer: string;
  question: string;
}

interface Draft {
  doc: SyntheticDocument;
  facts: Fact[];
}

function checkOptions(o: SyntheticStreamOptions): void {
  const bad = (msg: string): never => {
    throw new MacLmError("MACLM_BAD_ARGUMENT", `syntheticStream: ${msg}`);
  };
  if (!Number.isInteger(o.seed)) bad(`seed must be an integer, got ${o.seed}`);
  if (!Number.isInteger(o.numDocs) || o.numDocs < 0) bad(`numDocs must be a non-negative integer, got ${o.numDocs}`);
  if (!Number.isInteger(o.factsPerDoc) || o.factsPerDoc < 1 || o.factsPerDoc > MAX_FACTS)
    bad(`factsPerDoc must be an integer in 1…${MAX_FACTS}, got ${o.factsPerDoc}`);
  const maxQ = Math.min(MAX_QUESTIONS, o.factsPerDoc);
  if (!Number.isInteger(o.questionsPerDoc) || o.questionsPerDoc < 0 || o.questionsPerDoc > maxQ)
    bad(
      `questionsPerDoc must be an integer in 0…${maxQ} (min(${MAX_QUESTIONS}, factsPerDoc)), got ${o.questionsPerDoc}`,
    );
  if (!["train", "val", "test"].includes(o.split))
    bad(`split must be "train", "val" or "test", got ${String(o.split)}`);
  if (o.vocabulary !== undefined && o.vocabulary !== "natural" && o.vocabulary !== "tiny")
    bad(`vocabulary must be "natural" or "tiny", got ${String(o.vocabulary)}`);
}

const SPLIT_SALT: Record<SyntheticSplit, number> = { train: 0x1b873593, val: 0x5bd1e995, test: 0x68e31da4 };

/** Generates the stream; see the file comment for what it guarantees. */
export function syntheticStream(opts: SyntheticStreamOptions): SyntheticStream {
  checkOptions(opts);
  const tiny = opts.vocabulary === "tiny";
  const rng = new Rng((Math.imul(opts.seed, 0x9e3779b1) ^ SPLIT_SALT[opts.split]) >>> 0);
  const reserved = tiny ? TINY_FUNCTION_WORDS : templateWords();
  const g: Gen = { rng, names: new NameMaker(rng, opts.split, tiny, reserved) };
  const idWidth = String(Math.max(opts.numDocs - 1, 0)).length;
  const drafts: Draft[] = [];
  for (let i = 0; i < opts.numDocs; i++) {
    const id = `syn-${opts.split}-${opts.seed}-${String(i).padStart(idWidth, "0")}`;
    drafts.push(tiny ? tinyDoc(g, id, opts) : naturalDoc(g, id, opts));
  }
  return { documents: drafts.map((d) => d.doc), questions: pickQuestions(drafts, opts, rng) };
}

function naturalDoc(g: Gen, id: string, opts: SyntheticStreamOptions): Draft {
  const { rng } = g;
  let u = rng.uniform();
  let kind: Kind = "person";
  for (const [k, p] of KINDS) {
    kind = k;
    if ((u -= p) < 0) break;
  }
  const name = kind === "person" ? personName(g) : kind === "company" ? companyName(g) : g.names.word();
  const he = rng.uniform() < 0.5;
  const pronoun = kind === "person" ? (he ? "He" : "She") : "It";
  const possessive = kind === "person" ? (he ? "His" : "Her") : "Its";
  // Relations: questionsPerDoc with unique (fresh-name) objects first, so that enough questions exist; the rest
  // from all the others.
  const all = rng.shuffle([...RELATIONS[kind]]);
  const uniques = all.filter((r) => r.unique).slice(0, opts.questionsPerDoc);
  const rest = rng.shuffle(all.filter((r) => !uniques.includes(r))).slice(0, opts.factsPerDoc - uniques.length);
  const chosen = [...uniques, ...rest];
  const entities = [name];
  const facts: Fact[] = [];
  const sentences: string[] = [];
  for (const r of chosen) {
    const object = r.object(g);
    if (r.unique) entities.push(object.replace(/^the /, ""));
    facts.push({
      relation: r.name,
      answer: object.replace(/^the /, ""),
      question: r.questions[rng.int(r.questions.length)]!.replace("{N}", name),
    });
    sentences.push(r.sentences[rng.int(r.sentences.length)]!.replace("{O}", object).replace("{a}", article(object)));
  }
  // Order the sentences at random; the first names the subject, later ones use a pronoun half of the time.
  const order = rng.shuffle(sentences.map((_, i) => i));
  const text = order
    .map((si, pos) => {
      const useName = pos === 0 || rng.uniform() < 0.5;
      return sentences[si]!.replace("{S}", useName ? name : pronoun)
        .replace("{P}", useName ? possessiveOf(name) : possessive)
        .replace("{N}", name);
    })
    .join(" ");
  return { doc: { id, text, subject: name, kind, entities }, facts };
}

function tinyDoc(g: Gen, id: string, opts: SyntheticStreamOptions): Draft {
  const name = g.names.word();
  const chosen = g.rng.shuffle([...TINY_RELATIONS]).slice(0, opts.factsPerDoc);
  const entities = [name];
  const facts: Fact[] = [];
  const sentences: string[] = [];
  for (const r of chosen) {
    const object = g.names.word();
    entities.push(object);
    facts.push({ relation: r.name, answer: object, question: r.question.replace("{N}", name) });
    sentences.push(r.sentence.replace("{S}", name).replace("{O}", object));
  }
  return { doc: { id, text: sentences.join(" "), subject: name, kind: "entity", entities }, facts };
}

/** Lowercase words of the natural templates and vocabularies, which names must never be. */
function templateWords(): Set<string> {
  const words = new Set<string>(["he", "she", "it", "his", "her", "its", "a", "an", "ish"]);
  const add = (s: string): void => {
    for (const w of s.toLowerCase().match(/[a-z]+/g) ?? []) words.add(w);
  };
  for (const rels of Object.values(RELATIONS))
    for (const r of rels) for (const s of [...r.sentences, ...r.questions]) add(s.replace(/\{[A-Za-z]+\}/g, " "));
  for (const s of [
    ...OCCUPATIONS,
    ...PRODUCTS,
    ...COMPANY_SUFFIXES,
    ...CURRENCY_UNITS,
    "the University of",
    "Mount",
    "River",
    "Institute",
    "College",
  ])
    add(s);
  return words;
}

const tokens = (s: string): string[] => s.toLowerCase().match(/[a-z0-9]+/g) ?? [];

/**
 * Keeps, per document, `questionsPerDoc` facts whose answer occurs in no other document (token match, case-
 * insensitive: at least as strict as a word-boundary search), preferring none over another.
 */
function pickQuestions(drafts: Draft[], opts: SyntheticStreamOptions, rng: Rng): SyntheticQuestion[] {
  // Count, for every candidate answer, the documents whose token sequence contains it.
  const docsWith = new Map<string, Set<number>>();
  let maxLen = 1;
  for (const d of drafts)
    for (const f of d.facts) {
      const key = tokens(f.answer).join(" ");
      docsWith.set(key, new Set());
      maxLen = Math.max(maxLen, tokens(f.answer).length);
    }
  drafts.forEach((d, i) => {
    const t = tokens(d.doc.text);
    for (let n = 1; n <= maxLen; n++)
      for (let p = 0; p + n <= t.length; p++) docsWith.get(t.slice(p, p + n).join(" "))?.add(i);
  });
  const questions: SyntheticQuestion[] = [];
  drafts.forEach((d, i) => {
    const ok = d.facts.filter((f) => {
      const where = docsWith.get(tokens(f.answer).join(" "))!;
      return where.size === 1 && where.has(i) && d.doc.text.includes(f.answer);
    });
    if (ok.length < opts.questionsPerDoc)
      throw new MacLmError(
        "MACLM_BAD_ARGUMENT",
        `syntheticStream: document ${d.doc.id} has only ${ok.length} facts with a unique answer, ${opts.questionsPerDoc} needed (internal error)`,
      );
    rng
      .shuffle(ok)
      .slice(0, opts.questionsPerDoc)
      .forEach((f, j) =>
        questions.push({
          id: `${d.doc.id}-q${j}`,
          docId: d.doc.id,
          question: f.question,
          answers: [f.answer],
          relation: f.relation,
        }),
      );
  });
  return questions;
}
