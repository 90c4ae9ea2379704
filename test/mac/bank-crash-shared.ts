/** Entry contents shared by bank-crash.test.ts and its child process. */
export const CRASH_T = 4;
export const CRASH_D = 64;

export function crashLatent(k: number): Float32Array {
  const out = new Float32Array(CRASH_T * CRASH_D);
  for (let j = 0; j < out.length; j++) out[j] = Math.fround(Math.sin(k * 0.731 + j * 1.37) * (1 + (k % 17)));
  return out;
}
