/**
 * Rollout math on hand-made attention matrices with known answers: identity, uniform, a chain
 * through one token, head fusion, discarding, Chefer's gradient rollout, the explaining row and
 * bilinear resizing (PyTorch's align_corners=False values).
 */
import { describe, expect, it } from 'vitest';
import {
  attentionRollout, discardLowest, fuseHeads, gradientRollout, identity, patchRow, resizeBilinear, type HeadFusion,
} from '../../src/explain/index.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!), `index ${i}: ${a[i]} vs ${b[i]}`).toBeLessThanOrEqual(tol);
};
/** Stacks [T, T] matrices (rows of numbers) into one layer [H, T, T]. */
const layer = (...heads: number[][][]) => Float32Array.from(heads.flat(2));
const uniform = (t: number) => Array.from({ length: t }, () => new Array<number>(t).fill(1 / t));
const eye = (t: number) => Array.from({ length: t }, (_, i) => Array.from({ length: t }, (_, j) => (i === j ? 1 : 0)));
const rowWith = (t: number, j: number) => Array.from({ length: t }, (_, k) => (k === j ? 1 : 0));

describe('attention rollout', () => {
  it('identity attention rolls out to the identity: the class token sees only itself', () => {
    for (const opts of [{}, { headFusion: 'max' as const }, { discardRatio: 0.5 }, { discardRatio: 0.99 }]) {
      const r = attentionRollout([layer(eye(5), eye(5)), layer(eye(5), eye(5)), layer(eye(5), eye(5))], 2, 5, opts);
      close(r[2]!, identity(5));
      close(patchRow(r[2]!, 5, 1, 'cls'), [0, 0, 0, 0]);
    }
  });

  it('uniform attention: ((U + I)/2)^L = I/2^L + (1 − 2^−L)·U, so every patch gets (1 − 2^−L)/T', () => {
    const t = 6;
    const layers = Array.from({ length: 3 }, () => layer(uniform(t), uniform(t), uniform(t)));
    const r = attentionRollout(layers, 3, t);
    r.forEach((m, l) => {
      const L = l + 1;
      close(m, Float32Array.from({ length: t * t }, (_, i) => (i % (t + 1) === 0 ? 2 ** -L : 0) + (1 - 2 ** -L) / t));
    });
    close(patchRow(r[2]!, t, 1, 'cls'), new Array(t - 1).fill((1 - 1 / 8) / t));
  });

  it('a chain through one token: the class token reaches patch 2 through patch 1, in layer order', () => {
    // block 0: patch token 1 attends to token 2; block 1: the class token attends to token 1
    const b0 = eye(4);
    b0[1] = rowWith(4, 2);
    const b1 = eye(4);
    b1[0] = rowWith(4, 1);
    const r = attentionRollout([layer(b0), layer(b1)], 1, 4);
    // row 0 = ½·e0 + ¼·e1 + ¼·e2: half stays on the residual, the rest flows 0 → 1 → 2
    close(r[1]!.subarray(0, 4), [0.5, 0.25, 0.25, 0]);
    close(patchRow(r[1]!, 4, 1, 'cls'), [0.25, 0.25, 0]);
    // the other order cannot reach token 2: token 1 has not looked at it yet when the class token reads it
    const swapped = attentionRollout([layer(b1), layer(b0)], 1, 4);
    close(patchRow(swapped[1]!, 4, 1, 'cls'), [0.5, 0, 0]);
  });

  it.each([['mean', [0.35, 0.4, 0.25]], ['max', [0.6, 0.7, 0.3]], ['min', [0.1, 0.1, 0.2]]] as [HeadFusion, number[]][])(
    'head fusion %s is elementwise over heads, and rollout row-normalises the fused matrix', (fusion, row0) => {
      const h0 = [[0.6, 0.1, 0.3], [0.2, 0.2, 0.6], [0.3, 0.3, 0.4]];
      const h1 = [[0.1, 0.7, 0.2], [0.5, 0.4, 0.1], [0.3, 0.3, 0.4]];
      const fused = fuseHeads(layer(h0, h1), 2, 3, fusion);
      close(fused.subarray(0, 3), row0);
      const [r] = attentionRollout([layer(h0, h1)], 2, 3, { headFusion: fusion });
      const raw = [row0[0]! + 1, row0[1]!, row0[2]!].map((v) => v / 2);
      const s = raw.reduce((a, b) => a + b, 0);
      close(r!.subarray(0, 3), raw.map((v) => v / s));
      for (let i = 0; i < 3; i++) expect(r!.subarray(i * 3, i * 3 + 3).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    });

  it('discarding zeros the lowest ⌊ratio·T²⌋ entries (ties by position) but never [0, 0]', () => {
    const m = Float32Array.from([0.05, 0.3, 0.2, 0.1, 0.4, 0.1, 0.6, 0.02, 0.9]);
    // 0.34·9 → 3 lowest: 0.02 (7), 0.05 (0, kept), 0.1 (3, first of the tie)
    close(discardLowest(m, 3, 0.34), [0.05, 0.3, 0.2, 0, 0.4, 0.1, 0.6, 0, 0.9]);
    close(discardLowest(m, 3, 0), m);
    close(discardLowest(m, 3, 0.99), [0.05, 0, 0, 0, 0, 0, 0, 0, 0.9]);
    expect(() => discardLowest(m, 3, 1)).toThrow(/\[0, 1\)/);
  });

  it('discarding low attentions sharpens the rollout onto the strongly attended patch', () => {
    const a = [[0.1, 0.5, 0.2, 0.2], [0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]];
    const plain = patchRow(attentionRollout([layer(a)], 1, 4)[0]!, 4, 1, 'cls');
    const sharp = patchRow(attentionRollout([layer(a)], 1, 4, { discardRatio: 0.2 })[0]!, 4, 1, 'cls');
    // 0.2·16 → 3 lowest: [0,0] = 0.1 (kept), then [0,2] and [0,3] = 0.2: only patch 1 keeps weight,
    // row 0 becomes ([0.1, 0.5, 0, 0] + e0)/2 = [0.55, 0.25, 0, 0], normalised [0.6875, 0.3125, 0, 0]
    close(plain, [0.25, 0.1, 0.1]);
    close(sharp, [0.3125, 0, 0]);
  });
});

describe('gradient-weighted rollout (Chefer et al.)', () => {
  it('zero gradients leave R = I', () => {
    const a = layer(uniform(4), uniform(4));
    const r = gradientRollout([a, a], [new Float32Array(32), new Float32Array(32)], 2, 4);
    close(r[1]!, identity(4));
  });

  it('R ← R + Ā·R with Ā = mean_h (∇A ⊙ A)⁺: uniform attention and unit gradients give I + 3U after two blocks', () => {
    const t = 5;
    const a = layer(uniform(t), uniform(t));
    const ones = new Float32Array(2 * t * t).fill(1);
    const r = gradientRollout([a, a], [ones, ones], 2, t);
    close(r[0]!, Float32Array.from({ length: t * t }, (_, i) => (i % (t + 1) === 0 ? 1 : 0) + 1 / t));
    close(r[1]!, Float32Array.from({ length: t * t }, (_, i) => (i % (t + 1) === 0 ? 1 : 0) + 3 / t));
    // negative evidence is clipped: flipping the gradient's sign removes every contribution
    close(gradientRollout([a], [ones.map((v) => -v)], 2, t)[0]!, identity(t));
  });
});

describe('maps', () => {
  it('the explaining row: the class token, or the mean of the patch tokens for avg pooling', () => {
    const m = Float32Array.from({ length: 9 }, (_, i) => i); // [[0,1,2],[3,4,5],[6,7,8]]
    close(patchRow(m, 3, 1, 'cls'), [1, 2]);
    close(patchRow(m, 3, 1, 'patch-mean'), [5.5, 6.5]);
    close(patchRow(m, 3, 0, 'patch-mean'), [3, 4, 5]);
  });

  it('bilinear resizing matches PyTorch interpolate(align_corners=False)', () => {
    close(resizeBilinear(Float32Array.from([0, 1, 2, 3]), 2, 2, 4, 4),
      [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3]);
    close(resizeBilinear(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), 3, 3, 3, 3), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });
});
