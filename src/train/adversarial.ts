/**
 * Adversarial training inside the training loop: each batch is replaced by its attacked version,
 * made with the current weights through the engine's input gradients — Madry et al.'s PGD
 * training, or Wong et al.'s "fast" FGSM (a random start in the ε-ball, one step of 1.25ε). The
 * attack runs in pixel space [0, 1], before normalisation, as torchattacks and the `attack`
 * command do. Each batch's random start is seeded by (seed, micro-batch), so a resumed run
 * attacks exactly as an uninterrupted one.
 */
import type { Batch, BatchSource } from '../data/loader/batch_source.js';
import type { EvalTransform } from '../data/transforms/transform_config.js';
import type { ImageModel } from '../models/model.js';
import { Random, mixSeed } from '../random.js';
import { compileAttackModel, toNormalised, toPixels, type AttackModel } from '../robust/attack_model.js';
import { defaultEps, perturbBatch, resolveAttack, type AttackOptions } from '../robust/attacks.js';
import { attackBatch } from '../robust/evaluate.js';
import type { SessionOptions } from '../runtime/session.js';
import type { TrainConfig } from './config.js';

export class AdversarialTrainer {
  private constructor(private readonly attackModel: AttackModel, readonly attack: AttackOptions, readonly evalAttack: AttackOptions,
    private readonly transform: EvalTransform, private readonly seed: number) {}

  static async create(model: ImageModel, cfg: TrainConfig, transform: EvalTransform, session: SessionOptions): Promise<AdversarialTrainer> {
    if (cfg.adv === 'none') throw new Error('adversarial training needs --adv fgsm or --adv pgd');
    const eps = cfg.advEps ?? defaultEps(transform.inputSize[0], cfg.advNorm);
    const attack: AttackOptions = {
      method: cfg.adv, norm: cfg.advNorm, eps, alpha: cfg.advAlpha, randomStart: true, ...(cfg.adv === 'pgd' ? { steps: cfg.advSteps } : {}),
    };
    resolveAttack(attack); // bad combinations fail before the first epoch
    // robust accuracy is always measured with the stronger attack: PGD-10 finds what fast FGSM
    // training can overfit to ("catastrophic overfitting")
    const evalAttack: AttackOptions = { method: 'pgd', norm: cfg.advNorm, eps, steps: 10, randomStart: true };
    const attackModel = await compileAttackModel(model, { mean: transform.mean, std: transform.std, session });
    return new AdversarialTrainer(attackModel, attack, evalAttack, transform, cfg.seed);
  }

  private pixels(batch: Batch): Float32Array {
    const { inputSize, mean, std } = this.transform;
    // random erasing and Mixup may leave values outside [0, 1]; the threat model's box is [0, 1]
    return toPixels(batch.x.subarray(0, batch.size * inputSize[0] * inputSize[1] * inputSize[2]), inputSize, mean, std).map((v) => Math.min(1, Math.max(0, v)));
  }

  /** The attacked version of a training batch, normalised as the model takes it. */
  async perturb(batch: Batch, microBatch: number): Promise<Float32Array> {
    const { inputSize, mean, std } = this.transform;
    const { adversarial } = await perturbBatch(this.attackModel, this.pixels(batch), batch.labels, this.attack, new Random(mixSeed(this.seed, microBatch, 0xadd5)));
    return toNormalised(adversarial, inputSize, mean, std);
  }

  /** Accuracy under PGD-10 on the first `images` evaluation images (correct both clean and attacked). */
  async robustTop1(loader: BatchSource, images: number): Promise<number> {
    let seen = 0, robust = 0;
    for (let i = 0; i < loader.numBatches && seen < images; i++) {
      const b = await loader.batch(0, i);
      const size = Math.min(b.size, images - seen);
      if (size === 0) continue;
      const labels = b.labels.subarray(0, size);
      const x = this.pixels({ ...b, size });
      const { before, after } = await attackBatch(this.attackModel, x, labels, this.evalAttack, new Random(mixSeed(this.seed, i, 0xe7a1)));
      for (let k = 0; k < size; k++) robust += before.predictions[k] === labels[k] && after.predictions[k] === labels[k] ? 1 : 0;
      seen += size;
    }
    return seen ? robust / seen : 0;
  }

  dispose(): Promise<void> {
    return this.attackModel.dispose();
  }
}
