/**
 * Parameter initialisers, timm's defaults for ViTs. Each takes the element count and a random
 * stream of its own (seeded per parameter), so initialisation does not depend on the order in
 * which parameters are first touched.
 */
import type { Random } from '../random.js';

export type Initializer = (n: number, rng: Random) => Float32Array;

export const zeros = (): Initializer => (n) => new Float32Array(n);
export const ones = (): Initializer => (n) => new Float32Array(n).fill(1);
/** timm's trunc_normal_(std) with the default absolute cut-off at ±2. */
export const truncNormal = (std = 0.02): Initializer => (n, rng) => rng.fillNormal(new Float32Array(n), std, -2, 2);
export const normal = (std: number): Initializer => (n, rng) => rng.fillNormal(new Float32Array(n), std);
/** PyTorch's default for Linear/Conv weights and biases: U(−1/√fanIn, 1/√fanIn). */
export const uniformFanIn = (fanIn: number): Initializer => (n, rng) => {
  const bound = 1 / Math.sqrt(fanIn);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.uniform() * 2 - 1) * bound;
  return out;
};
