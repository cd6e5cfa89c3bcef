/** Parameter initialisers, timm's defaults for ViTs. */
import type { Random } from '../random.js';

export const zeros = () => (n: number) => new Float32Array(n);
export const ones = () => (n: number) => new Float32Array(n).fill(1);
/** timm's trunc_normal_(std) with the default absolute cut-off at ±2. */
export const truncNormal = (rng: Random, std = 0.02) => (n: number) => Float32Array.from({ length: n }, () => rng.truncNormal(std));
export const normal = (rng: Random, std: number) => (n: number) => Float32Array.from({ length: n }, () => rng.normal() * std);
/** PyTorch's default for Linear/Conv weights and biases: U(−1/√fanIn, 1/√fanIn). */
export const uniformFanIn = (rng: Random, fanIn: number) => (n: number) => {
  const bound = 1 / Math.sqrt(fanIn);
  return Float32Array.from({ length: n }, () => (rng.uniform() * 2 - 1) * bound);
};
