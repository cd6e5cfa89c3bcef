/**
 * Supervised classification: cross-entropy against the batch's soft targets. Label smoothing and
 * Mixup/CutMix are already in those targets (the loaders mix images and targets on the host from
 * the run's seeded stream, so a resumed run mixes the same way). Each epoch it reports top-1,
 * top-5 and loss on the evaluation data, and the EMA weights' top-1 when there is an EMA; the
 * best checkpoint is the one with the highest top-1.
 */
import { crossEntropy } from '../../ops/index.js';
import type { Batch } from '../../data/loader/batch_source.js';
import { evaluate, evaluateWithLogits } from '../evaluate.js';
import type { EvaluationContext, Objective, ObjectiveEvaluation } from './objective.js';
import type { ImageModel } from '../../models/model.js';

export class SupervisedObjective implements Objective {
  readonly name: string = 'supervised';
  readonly best = { metric: 'eval_top1', mode: 'max' } as const;

  inputs(model: ImageModel) {
    return [{ name: 'targets', shape: ['batch', model.numClasses] as const }];
  }

  loss(model: ImageModel, x: Parameters<Objective['loss']>[1], inputs: Parameters<Objective['loss']>[2], opts: Parameters<Objective['loss']>[3]) {
    return crossEntropy(model.forward(x, opts).logits, inputs.targets!);
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
