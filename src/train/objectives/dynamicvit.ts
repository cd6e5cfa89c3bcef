/**
 * DynamicViT fine-tuning (Rao et al. 2021, https://arxiv.org/abs/2106.02034; losses as
 * raoyongming/DynamicViT's DistillDiffPruningLoss): a pruning ViT (model-kwarg dynamic_keep < 1)
 * starts from a plain ViT checkpoint (--pretrained), and the loss is
 *   CE(student, targets) + 2.0 · Σ_s mean_B (kept fraction_s − ρ^(s+1))² / stages
 *   + 0.5 · KL(teacher ‖ student logits) + 0.5 · MSE(student, teacher) over the patch tokens kept at the end.
 * Parameter groups as the reference's (DYNAMICVIT_GROUPS). The teacher is the pretrained model, frozen. It runs on the host per micro-batch (an ORT
 * session of its own) and its logits and final tokens are step inputs: the step's graph then
 * holds only the student's parameters, so nothing can send a gradient into the teacher, and no
 * second copy of every weight under other names is needed in the graph.
 */
import type { Tensor } from '../../ir/tensor.js';
import {
  add, cast, crossEntropy, div, exp, greater, logSoftmax, maximum, mean, mul, reshape, slice, stopGradient, sub, sum,
} from '../../ops/index.js';
import type { Batch } from '../../data/loader/batch_source.js';
import type { Optimizer } from '../../optim/adamw.js';
import { compile, type Executable } from '../../runtime/compile.js';
import type { ImageModel } from '../../models/model.js';
import { VisionTransformer, type PruningTrace } from '../../models/vit.js';
import { evaluate } from '../evaluate.js';
import { applyPretrained, loadPretrainedWeights } from '../finetune.js';
import type { EvaluationContext, Objective, ObjectiveContext, ObjectiveEvaluation } from './objective.js';

/** The reference's weights: ratio_weight 2.0, distill_weight 0.5 (logits and tokens), clf_weight 1.0. */
export const DYNAMICVIT_WEIGHTS = { ratio: 2.0, distill: 0.5 } as const;

/**
 * The reference's parameter groups (optim_factory.get_parameter_groups with main.py's defaults):
 * the score predictors learn at the scheduled LR; the pretrained backbone at 0.01 of it
 * (--lr_scale 0.01), and not at all for its first 5 of 30 epochs (fix_step 5), here the same
 * sixth of the run's optimiser steps; cls_token and pos_embed stay as pretrained.
 */
export const DYNAMICVIT_GROUPS = { backboneLrScale: 0.01, backboneFixedFraction: 5 / 30 } as const;

/** The LR factor of parameter `name` at optimiser step `step` of `totalSteps`. */
export function dynamicVitLrScale(name: string, step: number, totalSteps: number): number {
  if (/(^|\.)score_predictor\./.test(name)) return 1;
  if (/(^|\.)(cls_token|pos_embed)$/.test(name)) return 0;
  return step < Math.floor(totalSteps * DYNAMICVIT_GROUPS.backboneFixedFraction) ? 0 : DYNAMICVIT_GROUPS.backboneLrScale;
}

function pruningModel(model: ImageModel): VisionTransformer {
  if (!(model instanceof VisionTransformer) || model.pruneLocs.length === 0) {
    throw new RangeError(`--method dynamicvit needs a ViT/DeiT with token pruning, e.g. --model-kwargs dynamic_keep=0.7; got ${model.family}${model instanceof VisionTransformer ? ' without dynamic_keep' : ''}`);
  }
  return model;
}

/**
 * The DynamicViT loss from the student's logits [B, K], final tokens [B, T, D], pruning trace, the
 * soft targets [B, K] and the teacher's logits [B, K] and patch tokens [B, N, D].
 */
export function dynamicVitLoss(
  student: { logits: Tensor; tokens: Tensor; trace: PruningTrace; prefix: number; keep: number },
  targets: Tensor, teacherLogits: Tensor, teacherTokens: Tensor,
): { loss: Tensor; parts: Record<'ce' | 'ratio' | 'kl' | 'token', Tensor> } {
  const { logits, tokens, trace, prefix, keep } = student;
  const ce = crossEntropy(logits, targets);
  let ratio: Tensor | undefined;
  trace.decisions.forEach((d, s) => {
    const err = sub(mean(d, 1), keep ** (s + 1)); // [B]
    const term = mean(mul(err, err), 0);
    ratio = ratio ? add(ratio, term) : term;
  });
  ratio = div(ratio!, trace.decisions.length);
  // KL(teacher ‖ student) summed over classes, averaged over the batch (kl_div, batchmean, log targets)
  const ls = logSoftmax(logits, -1);
  const lt = logSoftmax(teacherLogits, -1);
  const kl = mean(sum(mul(exp(lt), sub(lt, ls)), -1), 0);
  // MSE over the tokens kept at the end (the policy's value, no gradient through the mask)
  const [, t, d] = tokens.shape as [unknown, number, number];
  const mask = cast(greater(stopGradient(trace.policy!), 0.5), tokens.dtype); // [B, N, 1]
  const diff = sub(slice(tokens, [1], [prefix], [t]), teacherTokens);
  const kept = sum(reshape(mask, [-1]), 0);
  const token = div(sum(reshape(mul(mul(diff, diff), mask), [-1]), 0), maximum(mul(kept, d), 1)); // 0 when nothing is kept
  const w = DYNAMICVIT_WEIGHTS;
  const loss = add(add(ce, mul(ratio, w.ratio)), add(mul(kl, w.distill), mul(token, w.distill)));
  return { loss, parts: { ce, ratio, kl, token } };
}

export class DynamicVitObjective implements Objective {
  readonly name = 'dynamicvit';
  readonly best = { metric: 'eval_top1', mode: 'max' } as const;

  private totalSteps = 0;
  /** Each parameter's LR factor before this objective's groups (--layer-decay's), multiplied in. */
  private baseScales?: Map<string, number>;

  private constructor(private readonly student: VisionTransformer, private readonly teacher: Executable) {}

  static async create({ model, cfg, session }: ObjectiveContext): Promise<DynamicVitObjective> {
    const student = pruningModel(model);
    if (!cfg.pretrained) throw new RangeError('--method dynamicvit distils from the unpruned model it starts from: give --pretrained <ViT checkpoint>');
    // the teacher: the same ViT without pruning, loaded from --pretrained itself (not copied from
    // the student, which on a resumed run already holds trained weights)
    const { dynamicKeep: _k, dynamicLocs: _l, ...plain } = student.config;
    const teacherModel = new VisionTransformer({ ...plain, dropPathRate: 0, dropRate: 0 });
    let reset = '';
    applyPretrained(teacherModel, await loadPretrainedWeights(cfg.pretrained), (m) => { if (/re-initialised|initialised fresh/.test(m)) reset = m; });
    if (reset) throw new RangeError(`--method dynamicvit distils from --pretrained's classifier, but ${cfg.pretrained} cannot serve as teacher here: ${reset}`);
    const [c, h, w] = student.inputShape;
    const prefix = student.numPrefixTokens;
    const teacher = await compile((x) => {
      const tokens = teacherModel.forwardFeatures(x);
      return { logits: teacherModel.forwardHead(tokens).logits, tokens: slice(tokens, [1], [prefix], [tokens.shape[1] as number]) };
    }, [{ name: 'x', shape: ['batch', c, h, w] }], session);
    return new DynamicVitObjective(student, teacher);
  }

  inputs(model: ImageModel) {
    const m = pruningModel(model);
    return [
      { name: 'targets', shape: ['batch', m.numClasses] as const },
      { name: 'teacher_logits', shape: ['batch', m.numClasses] as const },
      { name: 'teacher_tokens', shape: ['batch', m.patchEmbed.numPatches, m.config.embedDim] as const },
    ];
  }

  loss(model: ImageModel, x: Tensor, inputs: Record<string, Tensor>, opts: Parameters<Objective['loss']>[3]): Tensor {
    const m = pruningModel(model);
    const trace: PruningTrace = { decisions: [] };
    const tokens = m.forwardFeatures(x, { ...opts, pruning: trace });
    if (!trace.policy) throw new RangeError('--method dynamicvit: the step has no dynamic_gumbel noise input, so the model ran its inference path');
    const { logits } = m.forwardHead(tokens, opts);
    return dynamicVitLoss({ logits, tokens, trace, prefix: m.numPrefixTokens, keep: m.config.dynamicKeep }, inputs.targets!, inputs.teacher_logits!, inputs.teacher_tokens!).loss;
  }

  startEpoch(_epoch: number, { epochs, stepsPerEpoch }: { epochs: number; stepsPerEpoch: number }): void {
    this.totalSteps = epochs * stepsPerEpoch;
  }

  beforeOptimizerStep({ step, optimizer }: { step: number; optimizer: Optimizer }): void {
    this.baseScales ??= new Map(optimizer.specs.map((s) => [s.name, s.lrScale ?? 1]));
    for (const s of optimizer.specs) s.lrScale = this.baseScales.get(s.name)! * dynamicVitLrScale(s.name, step, this.totalSteps);
  }

  async feeds(batch: Batch, _micro: number): Promise<Record<string, Float32Array>> {
    const [c, h, w] = this.student.inputShape;
    const out = await this.teacher.run({ x: { data: batch.x, shape: [batch.size, c, h, w] } });
    return { x: batch.x, targets: batch.targets, teacher_logits: out.logits!.data as Float32Array, teacher_tokens: out.tokens!.data as Float32Array };
  }

  async evaluate({ inference, loader, classNames, ema }: EvaluationContext): Promise<ObjectiveEvaluation> {
    const summary = await evaluate(inference, loader, classNames);
    const emaSummary = ema ? await evaluate(inference, loader, classNames, ema.weights) : undefined;
    return {
      summary,
      record: { eval_loss: summary.loss, eval_top1: summary.top1, eval_top5: summary.top5, ...(emaSummary ? { ema_top1: emaSummary.top1 } : {}) },
    };
  }

  async dispose(): Promise<void> {
    await this.teacher.dispose();
  }
}
