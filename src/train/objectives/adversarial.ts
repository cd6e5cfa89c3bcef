/**
 * Adversarial training (Madry et al. 2018; Wong et al. 2020's fast FGSM): supervised
 * classification on each batch's attacked version, made with the current weights, and each
 * epoch the accuracy under PGD-10 (`robust_top1`) beside the clean metrics.
 */
import type { Batch } from '../../data/loader/batch_source.js';
import { AdversarialTrainer } from '../adversarial.js';
import type { EvaluationContext, ObjectiveContext, ObjectiveEvaluation } from './objective.js';
import { SupervisedObjective, lossOptionsOf } from './supervised.js';
import type { WeightedCrossEntropyOptions } from '../../ops/index.js';

export class AdversarialObjective extends SupervisedObjective {
  override readonly name = 'adversarial';

  private constructor(private readonly adversary: AdversarialTrainer, private readonly evalImages: number, lossOptions: WeightedCrossEntropyOptions) {
    super(lossOptions);
  }

  static async create(ctx: ObjectiveContext): Promise<AdversarialObjective> {
    const { model, cfg, transform, session } = ctx;
    return new AdversarialObjective(await AdversarialTrainer.create(model, cfg, transform, session), cfg.advEvalImages, lossOptionsOf(ctx));
  }

  override async feeds(batch: Batch, micro: number): Promise<Record<string, Float32Array>> {
    return { x: await this.adversary.perturb(batch, micro), targets: batch.targets };
  }

  override async evaluate(ctx: EvaluationContext): Promise<ObjectiveEvaluation> {
    const clean = await super.evaluate(ctx);
    if (this.evalImages === 0) return clean;
    return { ...clean, record: { ...clean.record, robust_top1: await this.adversary.robustTop1(ctx.loader, this.evalImages) } };
  }

  dispose(): Promise<void> {
    return this.adversary.dispose();
  }
}
