/**
 * Gradient accumulation over micro-batches (timm's --grad-accum-steps): each micro-batch's
 * gradients, weighted by its share of the optimiser batch, summed into one buffer per
 * trainable parameter; then clipped by global norm before the update.
 */
import type { HostTensor } from '../runtime/session.js';

export class GradientAccumulator {
  readonly grads: Map<string, Float32Array>;
  /** Micro-batches summed since the last reset. */
  count = 0;

  constructor(trainable: readonly string[], sizes: Map<string, number>) {
    this.grads = new Map(trainable.map((k) => [k, new Float32Array(sizes.get(k)!)]));
  }

  /** Adds `share` × each `grad/<key>` output of a step (the first micro-batch overwrites). */
  add(out: Record<string, HostTensor>, share: number): void {
    for (const [k, acc] of this.grads) {
      const g = out[`grad/${k}`]!.data as Float32Array;
      if (this.count === 0) for (let i = 0; i < acc.length; i++) acc[i] = g[i]! * share;
      else for (let i = 0; i < acc.length; i++) acc[i]! += g[i]! * share;
    }
    this.count++;
  }

  reset(): void {
    this.count = 0;
  }
}

/** Scales gradients so their global L2 norm is at most `maxNorm` (torch.nn.utils.clip_grad_norm_). */
export function clipGlobalNorm(grads: Map<string, Float32Array>, maxNorm: number): number {
  let sq = 0;
  for (const g of grads.values()) for (let i = 0; i < g.length; i++) sq += g[i]! * g[i]!;
  const norm = Math.sqrt(sq);
  const scale = maxNorm / (norm + 1e-6);
  if (scale < 1) for (const g of grads.values()) for (let i = 0; i < g.length; i++) g[i]! *= scale;
  return norm;
}
