/**
 * Stochastic depth (Huang et al. 2016, https://arxiv.org/abs/1603.09382) as timm's DropPath: each
 * residual branch of each sample is dropped with probability p and otherwise scaled by 1/(1−p).
 * Masks are drawn on the host from a seeded stream and fed to the training step, so runs
 * reproduce; timm's linearly increasing rule gives block i the rate `rate · i / (depth − 1)`.
 */
import type { Random } from '../random.js';

export function dropPathRates(rate: number, depth: number): number[] {
  return Array.from({ length: depth }, (_, i) => (depth > 1 ? (rate * i) / (depth - 1) : rate));
}

/** Scales [batch, depth·2]: for block i, column 2i scales the attention branch and 2i+1 the MLP branch. */
export function dropPathScales(rng: Random, rate: number, depth: number, batch: number): Float32Array {
  const rates = dropPathRates(rate, depth);
  const out = new Float32Array(batch * depth * 2);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < depth; i++) {
      const keep = 1 - rates[i]!;
      for (let branch = 0; branch < 2; branch++) {
        out[b * depth * 2 + 2 * i + branch] = keep >= 1 ? 1 : rng.uniform() < keep ? 1 / keep : 0;
      }
    }
  }
  return out;
}

/** Dropout scales [batch, dim] for the pooled features before the head (timm's head_drop). */
export function dropoutScales(rng: Random, rate: number, count: number): Float32Array {
  const keep = 1 - rate;
  return Float32Array.from({ length: count }, () => (keep >= 1 ? 1 : rng.uniform() < keep ? 1 / keep : 0));
}
