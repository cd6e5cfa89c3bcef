/**
 * FGSM and PGD on a small ViT trained in the test on a Fashion-MNIST slice: exact projection onto
 * the ε-ball and the [0, 1] box, ε = 0 changes nothing, PGD finds a higher loss than FGSM, and the
 * attack model follows the weights it is bound to (for adversarial training).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  compileAttackModel, evaluateRobustness, fgsm, l2Distance, perturbBatch, pgd, predictionsAndLosses, projectL2, projectLinf,
  toNormalised, toPixels, type AttackModel,
} from '../../src/robust/index.js';
import { sliceDataset } from '../../src/data/datasets/dataset.js';
import { Random } from '../../src/random.js';
import { rng } from '../helpers/random.js';
import { MEAN, STD, trainSmallModel, type SmallModel } from './small_model.js';

const PER = 784;

function expectInBallAndBox(adv: Float32Array, x: Float32Array, eps: number, norm: 'linf' | 'l2') {
  let outside = 0;
  for (let i = 0; i < adv.length; i++) {
    if (!(adv[i]! >= 0 && adv[i]! <= 1)) outside++;
    if (norm === 'linf' && !(Math.abs(adv[i]! - x[i]!) <= eps)) outside++;
  }
  expect(outside).toBe(0);
  if (norm === 'l2') {
    for (let b = 0; b < adv.length / PER; b++) {
      expect(l2Distance(adv.subarray(b * PER, (b + 1) * PER), x.subarray(b * PER, (b + 1) * PER))).toBeLessThanOrEqual(eps);
    }
  }
}

describe('projection', () => {
  const r = rng(7);
  const x = Float32Array.from({ length: 4 * PER }, () => (r() < 0.3 ? 0 : r() < 0.1 ? 1 : r()));
  const far = () => x.map((v) => v + (r() - 0.5) * 3);

  it.each([0.1, 8 / 255, 0.3, 1e-7])('L∞ ε = %f: inside the ball and the box in float64, points inside unchanged', (eps) => {
    const adv = projectLinf(far(), x, eps);
    expectInBallAndBox(adv, x, eps, 'linf');
    // the bound is reached where the projection clips: ε is the exact distance up to one float32 step
    const reach = Math.max(...adv.map((v, i) => Math.abs(v - x[i]!)));
    expect(reach).toBeGreaterThan(eps * (1 - 1e-6) - 1e-7);
    const inside = x.map((v) => Math.min(1, Math.max(0, v + eps / 2 * (r() - 0.5))));
    expect(projectLinf(inside.slice(), x, eps)).toEqual(inside);
  });

  it.each([0.5, 1.5, 3])('L2 ε = %f: inside the ball and the box; a point outside lands on the sphere', (eps) => {
    const adv = projectL2(far(), x, eps, PER);
    expectInBallAndBox(adv, x, eps, 'l2');
    // a direction that stays inside the box: the projection keeps its direction and has norm ε
    const mid = new Float32Array(PER).fill(0.5);
    const dir = Float32Array.from({ length: PER }, () => 0.5 + (r() - 0.5) * 0.4);
    const p = projectL2(dir.slice(), mid, eps, PER);
    if (l2Distance(dir, mid) > eps) expect(l2Distance(p, mid)).toBeCloseTo(eps, 5);
  });
});

describe('attacks on a trained model', () => {
  let small: SmallModel;
  let attack: AttackModel;
  let x: Float32Array;
  let labels: number[];
  const lossOf = async (images: Float32Array) => {
    const { losses } = predictionsAndLosses(await attack.logits(images), labels, 10);
    return losses.reduce((a, b) => a + b, 0) / losses.length;
  };

  beforeAll(async () => {
    small = await trainSmallModel();
    attack = await compileAttackModel(small.model, { mean: MEAN, std: STD, session: { threads: 1 } });
    x = Float32Array.from(small.test.images.subarray(0, 100 * PER), (v) => v / 255);
    labels = Array.from(small.test.labels.subarray(0, 100));
  }, 120_000);

  it('perturbations respect the ε-ball and the [0, 1] box exactly (FGSM, fast FGSM, PGD L∞ and L2)', async () => {
    expectInBallAndBox(await fgsm(attack, x, labels, { eps: 0.1 }), x, 0.1, 'linf');
    expectInBallAndBox(await fgsm(attack, x, labels, { eps: 8 / 255, randomStart: true }, new Random(1)), x, 8 / 255, 'linf');
    expectInBallAndBox(await pgd(attack, x, labels, { eps: 0.1, steps: 5 }), x, 0.1, 'linf');
    expectInBallAndBox(await pgd(attack, x, labels, { eps: 1.5, norm: 'l2', steps: 5 }), x, 1.5, 'l2');
    expectInBallAndBox(await fgsm(attack, x, labels, { eps: 1, norm: 'l2' }), x, 1, 'l2');
  });

  it('FGSM moves every pixel whose gradient is non-zero by exactly ε unless the box stops it', async () => {
    const { grad } = await attack.lossAndGrad(x, labels);
    const adv = await fgsm(attack, x, labels, { eps: 0.1 });
    let checked = 0;
    let worst = 0;
    for (let i = 0; i < x.length; i++) {
      const target = Math.min(1, Math.max(0, x[i]! + 0.1 * Math.sign(grad[i]!)));
      worst = Math.max(worst, Math.abs(adv[i]! - target));
      if (grad[i] !== 0 && target > 0 && target < 1) checked++;
    }
    expect(worst).toBeLessThan(1e-7);
    expect(checked).toBeGreaterThan(1000);
  });

  it('ε = 0 leaves every image and the accuracy unchanged', async () => {
    for (const method of ['fgsm', 'pgd'] as const) {
      const { adversarial } = await perturbBatch(attack, x, labels, { method, eps: 0, steps: 3 });
      expect(adversarial).toEqual(x);
      const report = await evaluateRobustness(attack, sliceDataset(small.test, 0, 200), { attack: { method, eps: 0, steps: 2 }, batchSize: 100 });
      expect(report.robustAccuracy).toBe(report.cleanAccuracy);
      expect(report.adversarialLoss).toBeCloseTo(report.cleanLoss, 10);
    }
  });

  it('PGD reaches a higher loss than FGSM on the same batch, and both lower the accuracy', async () => {
    const clean = await lossOf(x);
    const fgsmLoss = await lossOf(await fgsm(attack, x, labels, { eps: 0.1 }));
    const pgdLoss = await lossOf(await pgd(attack, x, labels, { eps: 0.1 }));
    expect(fgsmLoss).toBeGreaterThan(clean);
    expect(pgdLoss).toBeGreaterThanOrEqual(fgsmLoss);
    const report = await evaluateRobustness(attack, sliceDataset(small.test, 0, 200), { attack: { method: 'pgd', eps: 0.1, steps: 5 }, batchSize: 100, keepExamples: 3 });
    expect(report.cleanAccuracy).toBeGreaterThan(0.6);
    expect(report.robustAccuracy).toBeLessThan(report.cleanAccuracy - 0.3);
    expect(report.maxPerturbation.linf).toBeLessThanOrEqual(0.1);
    expect(report.examples.map((e) => e.index)).toEqual([0, 1, 2]);
  });

  it('random starts are seeded', async () => {
    const run = (seed: number) => pgd(attack, x.subarray(0, 10 * PER), labels.slice(0, 10), { eps: 0.1, steps: 1 }, new Random(seed));
    const [a, b, c] = [await run(3), await run(3), await run(4)];
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('follows the weights of the model it is bound to (adversarial training updates them in place)', async () => {
    const before = await attack.logits(x.subarray(0, PER));
    const bias = small.model.namedParameters().find(([k]) => k === 'head.bias')![1];
    const saved = bias.data.slice();
    bias.data[2]! += 5;
    const after = await attack.logits(x.subarray(0, PER));
    bias.data.set(saved);
    expect(after[2]! - before[2]!).toBeCloseTo(5, 4);
  });

  it('converts between normalised inputs and pixels', () => {
    const shape = [1, 28, 28] as const;
    const back = toPixels(toNormalised(x.subarray(0, 2 * PER), shape, MEAN, STD), shape, MEAN, STD);
    expect(Math.max(...back.map((v, i) => Math.abs(v - x[i]!)))).toBeLessThan(1e-6);
  });
});
