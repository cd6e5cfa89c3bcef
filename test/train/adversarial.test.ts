/**
 * Adversarial training in the trainer (--adv fgsm|pgd): the batches it trains on are attacked
 * within the ε-ball, robust accuracy is logged each epoch, and it makes a model more robust.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset, type TensorDataset } from '../../src/data/datasets/dataset.js';
import { TensorLoader } from '../../src/data/loader/tensor_loader.js';
import { createModel } from '../../src/models/registry.js';
import { toPixels } from '../../src/robust/attack_model.js';
import { AdversarialTrainer } from '../../src/train/adversarial.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-adv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MEAN = [0.286], STD = [0.353];
const transform = { inputSize: [1, 28, 28] as const, cropPct: 1, interpolation: 'bilinear' as const, mean: MEAN, std: STD };
let data: { train: TensorDataset; test: TensorDataset };
beforeAll(async () => {
  data = { train: sliceDataset(await loadBuiltinDataset('fashion-mnist', 'train'), 0, 2000), test: sliceDataset(await loadBuiltinDataset('fashion-mnist', 'test'), 0, 200) };
});

describe('adversarial training', () => {
  for (const adv of ['fgsm', 'pgd'] as const) {
    it(`${adv}: the trained-on batch stays inside the ε-ball around the clean pixels, and is seeded`, async () => {
      const cfg = resolveTrainConfig({ adv, advEps: 0.1, advSteps: 3, seed: 3 });
      const model = createModel('vit_tiny_patch4_28', { seed: 1 });
      const trainer = await AdversarialTrainer.create(model, cfg, transform, { threads: 1 });
      const loader = new TensorLoader(sliceDataset(data.train, 0, 64), { batchSize: 64, shuffle: true, seed: 1, mean: MEAN, std: STD, augment: { cropPadding: 2, hflip: 0.5, reprob: 0, remode: 'pixel' } });
      const batch = loader.batch(0, 0);
      const adversarial = await trainer.perturb(batch, 5);
      const shape = [1, 28, 28] as const;
      const [clean, attacked] = [toPixels(batch.x, shape, MEAN, STD), toPixels(adversarial, shape, MEAN, STD)];
      let maxDelta = 0, moved = 0;
      for (let i = 0; i < clean.length; i++) {
        const d = Math.abs(attacked[i]! - Math.min(1, Math.max(0, clean[i]!)));
        maxDelta = Math.max(maxDelta, d);
        if (d > 1e-3) moved++;
        expect(attacked[i]!).toBeGreaterThanOrEqual(-1e-6);
        expect(attacked[i]!).toBeLessThanOrEqual(1 + 1e-6);
      }
      // the normalise/denormalise round trip costs a few float32 ulps
      expect(maxDelta).toBeLessThanOrEqual(0.1 + 1e-5);
      expect(maxDelta).toBeGreaterThan(0.09);
      expect(moved).toBeGreaterThan(clean.length / 4);
      expect(await trainer.perturb(batch, 5)).toEqual(adversarial);
      expect(await trainer.perturb(batch, 6)).not.toEqual(adversarial);
      await trainer.dispose();
    }, 60_000);
  }

  it('logs robust accuracy every epoch and makes the model more robust than clean training', async () => {
    const base = { epochs: 3, batchSize: 64, lr: 2e-3, warmupEpochs: 0.3, seed: 5, evalLimit: 200 };
    const clean = await train(resolveTrainConfig({ ...base, output: join(dir, 'clean') }), { datasets: data });
    const robust = await train(resolveTrainConfig({ ...base, adv: 'fgsm', advEps: 0.1, advEvalImages: 200, output: join(dir, 'adv') }), { datasets: data });
    expect(clean.metrics.every((m) => m.robust_top1 === undefined)).toBe(true);
    expect(robust.metrics.map((m) => typeof m.robust_top1)).toEqual(['number', 'number', 'number']);
    const last = robust.metrics[2]!;
    // robust means correct both clean and attacked
    expect(last.robust_top1!).toBeLessThanOrEqual(last.eval_top1!);
    // the clean model's robustness, measured the same way (PGD-10, ε 0.1, the same 200 images)
    const probe = await AdversarialTrainer.create(clean.model, resolveTrainConfig({ adv: 'pgd' }), transform, {});
    const evalLoader = new TensorLoader(data.test, { batchSize: 100, shuffle: false, seed: 0, mean: MEAN, std: STD });
    const cleanRobust = await probe.robustTop1(evalLoader, 200);
    await probe.dispose();
    // measured: the clean model 0.005, the fast-FGSM model 0.215 (clean top-1 0.545 vs 0.355) after
    // 3 epochs of 2,000 images
    expect(last.robust_top1!).toBeGreaterThan(cleanRobust + 0.1);
    // measured: 196 s of wall time (125 s of CPU) with the 2-core machine shared (load 6-7), and
    // 240 s ran out at load 9: room for about 3x the loaded time
  }, 600_000);
});
