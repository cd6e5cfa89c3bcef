/** --sampler balanced: class-balanced draws with replacement, seeded by (seed, epoch), in both loaders' order. */
import { describe, expect, it } from 'vitest';
import { balancedEpochOrder } from '../../src/data/loader/batch_source.js';
import { TensorLoader } from '../../src/data/loader/tensor_loader.js';
import type { TensorDataset } from '../../src/data/datasets/dataset.js';

// 1:20 imbalance: 20 images of class 0 per image of class 1, 2,100 in all
const labels = Uint8Array.from({ length: 2100 }, (_, i) => (i % 21 === 20 ? 1 : 0));

describe('balancedEpochOrder', () => {
  it('draws every class about equally often, as many draws as images, and the same epoch the same way', () => {
    const order = balancedEpochOrder(labels, 7, 0);
    expect(order.length).toBe(labels.length);
    const rare = [...order].filter((i) => labels[i] === 1).length;
    // binomial(2100, 0.5): 5 standard deviations are ±115
    expect(Math.abs(rare - 1050)).toBeLessThan(115);
    // within a class, every image is as likely: each of the 100 rare images ~10.5 times
    const perRare = new Map<number, number>();
    for (const i of order) if (labels[i] === 1) perRare.set(i, (perRare.get(i) ?? 0) + 1);
    expect(perRare.size).toBeGreaterThan(95);
    expect(Math.max(...perRare.values())).toBeLessThan(30);
    expect([...balancedEpochOrder(labels, 7, 0)]).toEqual([...order]);
    expect([...balancedEpochOrder(labels, 7, 1)]).not.toEqual([...order]);
    expect([...balancedEpochOrder(labels, 8, 0)]).not.toEqual([...order]);
  });

  it('the tensor loader follows it: a fresh loader (a resumed run) rebuilds the same batch, and a repeated image gets its own augmentation', () => {
    const n = 64;
    const ds = {
      name: 'toy', images: Uint8Array.from({ length: n * 16 }, (_, k) => (k * 37) % 251), labels: Uint8Array.from({ length: n }, (_, i) => (i < 60 ? 0 : 1)),
      classNames: ['common', 'rare'], imageShape: [1, 4, 4], length: n,
    } as unknown as TensorDataset;
    const make = () => new TensorLoader(ds, { batchSize: 16, shuffle: true, balanced: true, seed: 3, mean: [0], std: [1], augment: { cropPadding: 1, hflip: 0.5, reprob: 0, remode: 'pixel' } });
    const a = make(), b = make();
    const batches = Array.from({ length: a.numBatches }, (_, i) => a.batch(2, i));
    expect(b.batch(2, 3).x).toEqual(batches[3]!.x);
    const all = batches.flatMap((x) => [...x.labels]);
    expect(all.filter((l) => l === 1).length).toBeGreaterThan(16); // 4 of 64 images, about half the draws
    // the rare images recur: two turns of one image differ in their crop/flip at least once
    const order = a.order(2);
    const turns = new Map<number, Float32Array[]>();
    order.forEach((index, pos) => {
      const batch = batches[Math.floor(pos / 16)]!;
      const img = batch.x.subarray((pos % 16) * 16, (pos % 16 + 1) * 16);
      turns.set(index, [...(turns.get(index) ?? []), img]);
    });
    const repeated = [...turns.values()].filter((t) => t.length > 1);
    expect(repeated.length).toBeGreaterThan(0);
    expect(repeated.some((t) => t.some((img) => img.some((v, k) => v !== t[0]![k])))).toBe(true);
  });
});
