/**
 * The snippet shown with a source: the sentence of the document that shares the most words with the question
 * (ties: the earlier one), cut to about 240 characters at a word boundary. Cheap and deterministic; it only points
 * the reader at where to look, the weight says how much the answer drew on the document.
 */
const MAX = 240;
const STOP = new Set(
  "a an and are as at be by did do does for from had has have how in is it its of on or that the this to was were what when where which who whom whose why with".split(
    " ",
  ),
);

const words = (s: string): string[] => (s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).filter((w) => !STOP.has(w));

export function snippetFor(text: string, question: string): string {
  const sentences =
    text
      .match(/[^.!?\n]+(?:[.!?]+|$)/gu)
      ?.map((s) => s.trim())
      .filter(Boolean) ?? [];
  if (sentences.length === 0) return cut(text.trim());
  const q = new Set(words(question));
  let best = sentences[0]!;
  let bestScore = -1;
  for (const s of sentences) {
    const score = new Set(words(s).filter((w) => q.has(w))).size;
    if (score > bestScore) {
      best = s;
      bestScore = score;
    }
  }
  return cut(best);
}

function cut(s: string): string {
  if (s.length <= MAX) return s;
  const head = s.slice(0, MAX);
  const space = head.lastIndexOf(" ");
  return `${head.slice(0, space > MAX / 2 ? space : MAX)}…`;
}
