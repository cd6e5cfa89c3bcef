/**
 * What the trainer and evaluator consume: numbered batches of an epoch, built on demand. The
 * in-memory tensor loader and the image-folder loader (worker threads, prefetch) both provide it.
 */
import type { Batch } from './tensor_loader.js';
import { Random, mixSeed } from '../../random.js';

export type { Batch };

export interface BatchSource {
  readonly numBatches: number;
  /** Total images per epoch. */
  readonly length: number;
  readonly classNames: readonly string[];
  /** [C, H, W] of the batches' images */
  readonly imageShape: readonly [number, number, number];
  /** Batch `index` of `epoch`; the same (epoch, index) always gives the same batch. */
  batch(epoch: number, index: number): Batch | Promise<Batch>;
  /**
   * Hands back a batch the caller is done with, so its memory can hold a later batch; its images
   * (`x`) must not be read afterwards (asking for the batch again rebuilds it). Optional: sources that don't
   * pool memory leave it out, and a caller that never releases just allocates.
   */
  release?(batch: Batch): void;
  /** Releases workers and files. */
  close?(): Promise<void>;
}

/**
 * A class-balanced epoch: as many draws as samples, with replacement, each sample drawn with
 * probability ∝ 1 / (images of its class) — PyTorch's WeightedRandomSampler with those weights
 * (every class equally likely per draw). Seeded by (seed, epoch) alone, so a resumed run draws the
 * same epoch; a sample may appear several times in an epoch, and another not at all.
 */
export function balancedEpochOrder(labels: ArrayLike<number>, seed: number, epoch: number): Uint32Array {
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) {
    const list = byClass.get(labels[i]!);
    if (list) list.push(i);
    else byClass.set(labels[i]!, [i]);
  }
  const classes = [...byClass.keys()].sort((a, b) => a - b).map((c) => byClass.get(c)!);
  const rng = new Random(mixSeed(seed, epoch, 0xba1a));
  return Uint32Array.from({ length: labels.length }, () => {
    const members = classes[rng.int(classes.length)]!;
    return members[rng.int(members.length)]!;
  });
}

/** An epoch's sample order: a permutation seeded by (seed, epoch), or the identity without shuffling. */
export function epochOrder(length: number, shuffle: boolean, seed: number, epoch: number): Uint32Array {
  const idx = Uint32Array.from({ length }, (_, i) => i);
  if (shuffle) {
    const rng = new Random(mixSeed(seed, epoch, 0x5eed));
    for (let i = idx.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [idx[i], idx[j]] = [idx[j]!, idx[i]!];
    }
  }
  return idx;
}
