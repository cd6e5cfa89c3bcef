/**
 * Weighted k-NN against scripts/knn_ref.py (torch port of DINO's knn_classifier, dino 7c446df5):
 * the same fixed features give the same class votes (≤ 1e-4 relative) and the same top-1/top-5.
 */
import { describe, expect, it } from 'vitest';
import { knnAccuracy, knnVotes, l2Normalise } from '../../src/train/knn.js';
import { readJsonFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';

const fx = readJsonFixture('knn_goldens.json');

describe('weighted k-NN as DINO computes it', () => {
  for (const c of fx.cases as { k: number; T: number; votes: number[]; top1: number; top5: number }[]) {
    it(`k = ${c.k}, T = ${c.T}`, () => {
      const train = l2Normalise(Float32Array.from(fx.train), fx.dim);
      const test = l2Normalise(Float32Array.from(fx.test), fx.dim);
      const votes = knnVotes(train, fx.train_labels, test, fx.dim, fx.classes, { k: c.k, temperature: c.T });
      expect(relError(votes, c.votes, 1e-6)).toBeLessThanOrEqual(1e-4);
      const acc = knnAccuracy(votes, fx.test_labels, fx.classes, c.k);
      expect(acc.top1).toBeCloseTo(c.top1, 12);
      expect(acc.top5).toBeCloseTo(c.top5, 12);
    });
  }

  it('rows are unit length and k beyond the bank is refused', () => {
    const n = l2Normalise(Float32Array.from([3, 4, 0, 0]), 2);
    expect(Array.from(n)).toEqual([Math.fround(0.6), Math.fround(0.8), 0, 0]);
    expect(() => knnVotes(n, [0, 1], n, 2, 2, { k: 3 })).toThrow(/1 ≤ k ≤ 2/);
  });
});
