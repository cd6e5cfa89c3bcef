/**
 * Supervised classification: cross-entropy against the batch's soft targets. Label smoothing and
 * Mixup/CutMix are already in those targets (the loaders mix images and targets on the host from
 * the run's seeded stream, so a resumed run mixes the same way). For imbalanced classes the loss
 * takes class weights (`--class-weights`) and the focal term (`--loss focal`), see
 * weightedCrossEntropy. Each epoch it reports top-1,
 * top-5 and loss on the evaluation data, and the EMA weights' top-1 when there is an EMA; the
 * best checkpoint is the one with the highest top-1.
 */
import { crossEntropy, weightedCrossEntropy, type WeightedCrossEntropyOptions } from '../../ops/index.js';
import type { Batch } from '../../data/loader/batch_source.js';
import { evaluate, evaluateWithLogits } from '../evaluate.js';
import type { EvaluationContext, Objective, ObjectiveContext, ObjectiveEvaluation } from './objective.js';
import type { TrainConfig } from '../config.js';
import type { ImageModel } from '../../models/model.js';

export class SupervisedObjective implements Objective {
  readonly name: string = 'supervised';
  readonly best = { metric: 'eval_top1', mode: 'max' } as const;

  /** No options: plain cross-entropy (the graph is the one it always was). */
  constructor(private readonly lossOptions: WeightedCrossEntropyOptions = {}) {}

  inputs(model: ImageModel) {
    return [{ name: 'targets', shape: ['batch', model.numClasses] as const }];
  }

  loss(model: ImageModel, x: Parameters<Objective['loss']>[1], inputs: Parameters<Objective['loss']>[2], opts: Parameters<Objective['loss']>[3]) {
    const logits = model.forward(x, opts).logits;
    const { classWeights, gamma = 0 } = this.lossOptions;
    return classWeights || gamma > 0 ? weightedCrossEntropy(logits, inputs.targets!, this.lossOptions) : crossEntropy(logits, inputs.targets!);
  }

  feeds(batch: Batch, _micro: number): Promise<Record<string, Float32Array>> | Record<string, Float32Array> {
    return { x: batch.x, targets: batch.targets };
  }

  async evaluate({ inference, loader, classNames, ema }: EvaluationContext): Promise<ObjectiveEvaluation> {
    const { summary, logits, labels } = await evaluateWithLogits(inference, loader, classNames);
    const emaSummary = ema ? await evaluate(inference, loader, classNames, ema.weights) : undefined;
    return {
      summary,
      outputs: { logits, labels },
      record: { eval_loss: summary.loss, eval_top1: summary.top1, eval_top5: summary.top5, ...(emaSummary ? { ema_top1: emaSummary.top1 } : {}) },
    };
  }
}

/** --loss, --focal-gamma and --class-weights as the loss's options; "balanced" counts the training images of each class. */
export function lossOptionsOf({ cfg, classes, classCounts = [] }: Pick<ObjectiveContext, 'classes' | 'classCounts'> & { cfg: Pick<TrainConfig, 'loss' | 'focalGamma' | 'classWeights'> }): WeightedCrossEntropyOptions {
  const gamma = cfg.loss === 'focal' ? cfg.focalGamma : 0;
  if (cfg.classWeights === undefined) return { gamma };
  if (cfg.classWeights === 'balanced') {
    const total = classCounts.reduce((a, b) => a + b, 0);
    const empty = Array.from({ length: classes }, (_, c) => c).filter((c) => !(classCounts[c]! > 0));
    if (empty.length) throw new RangeError(`--class-weights balanced: class ${empty[0]} has no training images; give the weights as w1,w2,… instead`);
    return { gamma, classWeights: Float32Array.from({ length: classes }, (_, c) => total / (classes * classCounts[c]!)) };
  }
  const weights = cfg.classWeights.split(',').map(Number);
  if (weights.length !== classes) throw new RangeError(`--class-weights ${cfg.classWeights}: ${weights.length} weights for ${classes} classes; expected one per class, in class order`);
  if (weights.some((w) => !(w > 0))) throw new RangeError(`--class-weights ${cfg.classWeights}: every weight must be positive`);
  return { gamma, classWeights: Float32Array.from(weights) };
}
