/**
 * Clean and robust accuracy of a model over a dataset under an attack. An image counts as robust
 * when the model classifies it correctly both clean and under attack (RobustBench's definition),
 * so robust accuracy never exceeds clean accuracy.
 */
import type { TensorDataset } from '../data/datasets/dataset.js';
import { logSumExp } from '../nn/host_math.js';
import { Random, mixSeed } from '../random.js';
import type { AttackModel } from './attack_model.js';
import { l2Distance, perturbBatch, resolveAttack, type AttackOptions, type ResolvedAttack } from './attacks.js';

export interface RobustnessOptions {
  attack: AttackOptions;
  /** Images per batch (default 100). */
  batchSize?: number;
  /** Seed of the random starts; batch i draws from its own stream (default 0). */
  seed?: number;
  /** Keep the first n images with their adversarial versions and predictions (default 0). */
  keepExamples?: number;
  onBatch?(done: number, total: number): void;
}

export interface AdversarialExample {
  index: number;
  label: number;
  cleanPrediction: number;
  adversarialPrediction: number;
  /** [C, H, W] in [0, 1] */
  original: Float32Array;
  adversarial: Float32Array;
}

export interface RobustnessReport {
  attack: ResolvedAttack;
  count: number;
  cleanAccuracy: number;
  /** Correct both clean and under attack. */
  robustAccuracy: number;
  /** Of the images classified correctly when clean, the fraction the attack flips. */
  attackSuccessRate: number;
  /** Mean cross-entropy, clean and adversarial. */
  cleanLoss: number;
  adversarialLoss: number;
  /** Largest perturbation over the images, in both norms. */
  maxPerturbation: { linf: number; l2: number };
  examples: AdversarialExample[];
}

/** Row-wise argmax and cross-entropy of logits [B, classes]. */
export function predictionsAndLosses(logits: Float32Array, labels: ArrayLike<number>, classes: number): { predictions: Int32Array; losses: Float64Array } {
  const n = labels.length;
  const predictions = new Int32Array(n);
  const losses = new Float64Array(n);
  for (let b = 0; b < n; b++) {
    const row = logits.subarray(b * classes, (b + 1) * classes);
    let best = 0;
    for (let j = 1; j < classes; j++) if (row[j]! > row[best]!) best = j;
    predictions[b] = best;
    losses[b] = logSumExp(row) - row[labels[b]!]!;
  }
  return { predictions, losses };
}

/**
 * One batch attacked: the adversarial images, and the model's predictions and losses on the clean
 * and on the attacked images (the core of evaluateRobustness and of adversarial training's
 * robust accuracy).
 */
export async function attackBatch(model: AttackModel, x: Float32Array, labels: ArrayLike<number>, attack: AttackOptions, rng: Random) {
  const { adversarial } = await perturbBatch(model, x, labels, attack, rng);
  const before = predictionsAndLosses(await model.logits(x), labels, model.classes);
  const after = predictionsAndLosses(await model.logits(adversarial), labels, model.classes);
  return { adversarial, before, after };
}

export async function evaluateRobustness(model: AttackModel, dataset: TensorDataset, opts: RobustnessOptions): Promise<RobustnessReport> {
  const attack = resolveAttack(opts.attack);
  const [c, h, w] = model.inputShape;
  const per = c * h * w;
  if (dataset.imageShape.join() !== [c, h, w].join()) {
    throw new RangeError(`the model expects ${c}×${h}×${w} images but ${dataset.name} has ${dataset.imageShape.join('×')}`);
  }
  if (dataset.length === 0) throw new RangeError(`${dataset.name} has no images to attack`);
  const batchSize = opts.batchSize ?? 100;
  const keep = opts.keepExamples ?? 0;
  const batches = Math.ceil(dataset.length / batchSize);
  let clean = 0;
  let robust = 0;
  let cleanLoss = 0;
  let advLoss = 0;
  const maxPerturbation = { linf: 0, l2: 0 };
  const examples: AdversarialExample[] = [];
  for (let i = 0; i < batches; i++) {
    const start = i * batchSize;
    const size = Math.min(batchSize, dataset.length - start);
    const x = Float32Array.from(dataset.images.subarray(start * per, (start + size) * per), (v) => v / 255);
    const labels = Array.from(dataset.labels.subarray(start, start + size));
    const { adversarial, before, after } = await attackBatch(model, x, labels, opts.attack, new Random(mixSeed(opts.seed ?? 0, i, 0xa77a)));
    for (let b = 0; b < size; b++) {
      const ok = before.predictions[b] === labels[b];
      clean += ok ? 1 : 0;
      robust += ok && after.predictions[b] === labels[b] ? 1 : 0;
      cleanLoss += before.losses[b]!;
      advLoss += after.losses[b]!;
      const orig = x.subarray(b * per, (b + 1) * per);
      const adv = adversarial.subarray(b * per, (b + 1) * per);
      let linf = 0;
      for (let k = 0; k < per; k++) linf = Math.max(linf, Math.abs(adv[k]! - orig[k]!));
      maxPerturbation.linf = Math.max(maxPerturbation.linf, linf);
      maxPerturbation.l2 = Math.max(maxPerturbation.l2, l2Distance(adv, orig));
      if (examples.length < keep) {
        examples.push({
          index: start + b, label: labels[b]!, cleanPrediction: before.predictions[b]!, adversarialPrediction: after.predictions[b]!,
          original: orig.slice(), adversarial: adv.slice(),
        });
      }
    }
    opts.onBatch?.(start + size, dataset.length);
  }
  const n = dataset.length;
  return {
    attack, count: n, cleanAccuracy: clean / n, robustAccuracy: robust / n, attackSuccessRate: clean ? (clean - robust) / clean : 0,
    cleanLoss: cleanLoss / n, adversarialLoss: advLoss / n, maxPerturbation, examples,
  };
}
