/**
 * The supervised loss options against PyTorch (scripts/make_loss_goldens.py, float64): class-weighted
 * and focal cross-entropy, value and gradient in float32 to 1e-5 relative; "balanced" class weights
 * against scikit-learn's compute_class_weight; and the options' one-line refusals.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as ops from '../../src/ops/index.js';
import { compile } from '../../src/runtime/compile.js';
import { lossOptionsOf } from '../../src/train/objectives/supervised.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { relError } from '../helpers/random.js';

interface Case { name: string; gamma: number; weights: number[]; logits: number[]; targets: number[]; shape: [number, number]; loss: number; grad: number[] }
const goldens = JSON.parse(readFileSync(new URL('../fixtures/loss_goldens.json', import.meta.url), 'utf8')) as
  { cases: Case[]; balanced: { counts: number[]; weights: number[] } };

describe('weightedCrossEntropy against PyTorch', () => {
  for (const c of goldens.cases) {
    it(c.name, async () => {
      const exe = await compile((logits, targets) => ({
        loss: ops.weightedCrossEntropy(logits, targets, { classWeights: Float32Array.from(c.weights), gamma: c.gamma }),
      }), [{ name: 'logits', shape: c.shape }, { name: 'targets', shape: c.shape }], { grad: { wrt: ['logits'] } });
      const res = await exe.run({ logits: Float32Array.from(c.logits), targets: Float32Array.from(c.targets) });
      await exe.dispose();
      expect(Math.abs(Number(res.loss!.data[0]) - c.loss) / Math.abs(c.loss)).toBeLessThanOrEqual(1e-5);
      expect(relError(res['grad/logits']!.data as Float32Array, c.grad)).toBeLessThanOrEqual(1e-5);
    });
  }

  it('with all-one weights and γ = 0 it is plain cross-entropy, and a confident row (softmax rounds to 1) keeps a finite focal gradient', async () => {
    const exe = await compile((logits, targets) => ({
      weighted: ops.weightedCrossEntropy(logits, targets, { classWeights: Float32Array.from([1, 1, 1]) }),
      plain: ops.crossEntropy(logits, targets),
      focal: ops.weightedCrossEntropy(logits, targets, { gamma: 2 }),
    }), [{ name: 'logits', shape: [2, 3] }, { name: 'targets', shape: [2, 3] }], { grad: { wrt: ['logits'], loss: 'focal' } });
    const res = await exe.run({ logits: Float32Array.from([0.3, -1, 2, 60, 0, -3]), targets: Float32Array.from([0.2, 0.3, 0.5, 1, 0, 0]) });
    await exe.dispose();
    expect(Number(res.weighted!.data[0])).toBeCloseTo(Number(res.plain!.data[0]), 6);
    expect([...(res['grad/logits']!.data as Float32Array)].every(Number.isFinite)).toBe(true);
  });
});

describe('--class-weights and --loss as loss options', () => {
  const cfg = (o: Record<string, unknown>) => resolveTrainConfig(o);

  it('balanced: n / (classes · count), as scikit-learn', () => {
    const { classWeights } = lossOptionsOf({ cfg: cfg({ classWeights: 'balanced' }), classes: 3, classCounts: goldens.balanced.counts });
    expect(relError(classWeights!, goldens.balanced.weights)).toBeLessThanOrEqual(1e-7);
  });

  it('an explicit list, the focal γ only with --loss focal, and nothing at the defaults', () => {
    expect([...lossOptionsOf({ cfg: cfg({ classWeights: '1, 20', loss: 'focal', focalGamma: 3 }), classes: 2 }).classWeights!]).toEqual([1, 20]);
    expect(lossOptionsOf({ cfg: cfg({ classWeights: '1,20', loss: 'focal', focalGamma: 3 }), classes: 2 }).gamma).toBe(3);
    expect(lossOptionsOf({ cfg: cfg({ focalGamma: 3 }), classes: 2 })).toEqual({ gamma: 0 });
  });

  it('bad values are one line naming them', () => {
    expect(() => lossOptionsOf({ cfg: cfg({ classWeights: '1,2,3' }), classes: 2 })).toThrow(/^--class-weights 1,2,3: 3 weights for 2 classes; expected one per class, in class order$/);
    expect(() => lossOptionsOf({ cfg: cfg({ classWeights: '1,0' }), classes: 2 })).toThrow(/every weight must be positive/);
    expect(() => lossOptionsOf({ cfg: cfg({ classWeights: 'balanced' }), classes: 3, classCounts: [4, 0, 2] })).toThrow(/class 1 has no training images/);
    expect(() => cfg({ classWeights: 'heavy' })).toThrow(/classWeights|class-weights/);
    expect(() => cfg({ focalGamma: 0.5 })).toThrow(/at least 1/);
  });
});
