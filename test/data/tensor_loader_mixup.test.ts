/** Mixup/CutMix on the in-memory tensor datasets (train --mixup/--cutmix on Fashion-MNIST). */
import { describe, expect, it } from 'vitest';
import { TensorLoader } from '../../src/data/loader/tensor_loader.js';
import { mixupSchema } from '../../src/data/transforms/mixup.js';
import type { TensorDataset } from '../../src/data/datasets/dataset.js';

// 8 images of 2×2, image i filled with the value 10·i, label i mod 4
const dataset: TensorDataset = {
  name: 'toy', images: Uint8Array.from({ length: 32 }, (_, k) => 10 * Math.floor(k / 4)), labels: Uint8Array.from({ length: 8 }, (_, i) => i % 4),
  classNames: ['a', 'b', 'c', 'd'], imageShape: [1, 2, 2], length: 8,
} as unknown as TensorDataset;
const loader = (mixup: object) => new TensorLoader(dataset, { batchSize: 8, shuffle: false, seed: 3, mean: [0], std: [1], smoothing: 0.1, mixup: mixupSchema.parse(mixup) });

describe('TensorLoader with Mixup', () => {
  it('blends each image with its partner in the flipped batch and mixes the soft targets with the same weight', () => {
    const b = loader({ mixup: 1 }).batch(0, 0);
    // image i is the constant 10·i/255 before mixing; after: λ·10i/255 + (1 − λ)·10(7 − i)/255
    const lam = (b.x[0]! - 70 / 255) / ((0 - 70) / 255);
    expect(lam).toBeGreaterThan(0);
    expect(lam).toBeLessThan(1);
    for (let i = 0; i < 8; i++) expect(b.x[i * 4]!).toBeCloseTo((lam * 10 * i + (1 - lam) * 10 * (7 - i)) / 255, 5);
    for (let i = 0; i < 8; i++) {
      const row = Array.from(b.targets.subarray(i * 4, i * 4 + 4));
      expect(row.reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6);
      // labels i mod 4 and (7 − i) mod 4 differ for every i here
      expect(row[i % 4]!).toBeCloseTo(0.025 + 0.9 * lam, 5);
      expect(row[(7 - i) % 4]!).toBeCloseTo(0.025 + 0.9 * (1 - lam), 5);
    }
    // seeded by (seed, epoch, batch)
    expect(loader({ mixup: 1 }).batch(0, 0).x).toEqual(b.x);
    expect(loader({ mixup: 1 }).batch(1, 0).x).not.toEqual(b.x);
  });

  it('without --mixup/--cutmix the targets are the label-smoothed one-hots', () => {
    const b = loader({}).batch(0, 0);
    expect(Array.from(b.targets.subarray(0, 4)).map((v) => +v.toFixed(6))).toEqual([0.925, 0.025, 0.025, 0.025]);
  });
});
