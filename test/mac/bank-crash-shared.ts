/** Entry contents shared by bank-crash.test.ts and its child process. */
export const CRASH_T = 4;
export const CRASH_D = 64;

export function crashLatent(k: number): Float32Array {
  const out = new Float32Array(CRASH_T * CRASH_D);
  for (let j = 0; j < out.length; j++) out[j] = Math.fround(Math.sin(k * 0.731 + j * 1.37) * (1 + (k % 17)));
  return out;
}

/** bank-documents-crash: the text of document `id` (varied lengths). */
export const docText = (id: string): string => `Document ${id}. `.repeat(1 + (id.length % 5) * 40);

/** bank-documents-crash: the entries of document `id`, 1–3 windows, (n·T·d) values. */
export function docEntries(id: string): Float32Array {
  let h = 0;
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  const n = 1 + (h % 3);
  const out = new Float32Array(n * CRASH_T * CRASH_D);
  for (let w = 0; w < n; w++) out.set(crashLatent((h % 100_000) + w), w * CRASH_T * CRASH_D);
  return out;
}
