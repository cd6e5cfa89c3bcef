/** Composite ops built from primitives: their gradients come from the primitives' VJPs. */
import type { DType } from '../ir/dtype.js';
import { Tensor } from '../ir/tensor.js';
import { fail } from './apply.js';
import { add, cast, div, equal, erf, exp, maximum, mul, neg, pow, sigmoid, sub } from './elementwise.js';
import { mean, sum } from './reduce.js';
import { reshape, unsqueeze } from './movement.js';
import { layerNorm, logSoftmax } from './nn.js';

/** GELU written out from primitives; the `gelu` primitive's hand-written VJP is tested against it. */
export function geluDecomposed(x: Tensor): Tensor {
  return mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));
}

/** SiLU written out from primitives; the `silu` primitive's hand-written VJP is tested against it. */
export function siluDecomposed(x: Tensor): Tensor {
  return mul(x, sigmoid(x));
}

/** One-hot rows for integer `labels` [...] → [..., numClasses]. */
export function oneHot(labels: Tensor, numClasses: number, dtype: DType = 'float32'): Tensor {
  if (labels.dtype !== 'int64') fail(`oneHot: labels must be int64, got ${labels.dtype}`);
  const classes = labels.graph.constant(BigInt64Array.from({ length: numClasses }, (_, i) => BigInt(i)), [numClasses], 'int64');
  return cast(equal(unsqueeze(labels, -1), classes), dtype);
}

export interface CrossEntropyOptions {
  /** Label smoothing ε: the target puts 1−ε on the label and ε/C spread over all classes (timm, PyTorch). */
  smoothing?: number;
}

/**
 * Mean cross-entropy of `logits` [N, C] against int64 class `targets` [N] or soft targets [N, C]
 * (rows summing to one, e.g. from mixup).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, { smoothing = 0 }: CrossEntropyOptions = {}): Tensor {
  if (logits.rank !== 2) fail(`crossEntropy: logits must be [N, C], got rank ${logits.rank}`);
  if (!(smoothing >= 0 && smoothing < 1)) fail(`crossEntropy: smoothing must be in [0, 1), got ${smoothing}`);
  const classes = logits.shape[1] as number;
  const logp = logSoftmax(logits, -1);
  const soft = targets.dtype === 'int64' ? oneHot(targets, classes, logits.dtype) : targets;
  if (soft.rank !== 2) fail(`crossEntropy: targets must be int64 [N] or soft [N, C], got rank ${targets.rank}`);
  const target = smoothing > 0 ? add(mul(soft, 1 - smoothing), smoothing / classes) : soft;
  return mean(neg(sum(mul(target, logp), -1)));
}

export interface WeightedCrossEntropyOptions {
  /** Per-class weights w [C] (e.g. sklearn's "balanced" n / (C·count_c)); none: all ones. */
  classWeights?: Float32Array;
  /** Focal exponent γ (Lin et al. 2017): 0 is cross-entropy; 0 < γ < 1 is refused (its gradient is infinite where p = 1). */
  gamma?: number;
}

/**
 * Class-weighted focal cross-entropy of `logits` [N, C] against soft targets [N, C]: each image's
 * cross-entropy (focal: each class term scaled by (1 − p)^γ, Lin et al. 2017) weighted by its
 * target's class weight s_n = Σ_c w_c·tₙ_c, over the sum of those weights:
 *   L = Σₙ sₙ·Σ_c tₙ_c·(1 − pₙ_c)^γ·(−log pₙ_c) / Σₙ sₙ,   p = softmax(logits).
 * With one-hot targets this is PyTorch's `F.cross_entropy(weight=w)` (γ = 0) and the α-balanced
 * focal loss (α_c = w_c). The weight is the image's, not each class term's: with label smoothing,
 * weighting the ε/C terms by a rare class's large weight would make every image of a common class
 * predict the rare one (PyTorch's label_smoothing with weight does weight them per term).
 */
export function weightedCrossEntropy(logits: Tensor, targets: Tensor, { classWeights, gamma = 0 }: WeightedCrossEntropyOptions = {}): Tensor {
  if (logits.rank !== 2 || targets.rank !== 2) fail(`weightedCrossEntropy: logits and targets must be [N, C], got ranks ${logits.rank} and ${targets.rank}`);
  if (!(gamma === 0 || gamma >= 1)) fail(`weightedCrossEntropy: the focal gamma must be 0 or at least 1, got ${gamma}`);
  const classes = logits.shape[1] as number;
  if (classWeights && classWeights.length !== classes) fail(`weightedCrossEntropy: ${classWeights.length} class weights for ${classes} classes`);
  const logp = logSoftmax(logits, -1);
  let perClass = mul(targets, neg(logp));
  // 1 − p floored at 1e-12: pow's gradient stays finite where the softmax rounds to exactly 1
  if (gamma > 0) perClass = mul(perClass, pow(maximum(sub(1, exp(logp)), 1e-12), gamma));
  if (!classWeights) return mean(sum(perClass, -1));
  const w = logits.graph.constant(logits.dtype === 'float64' ? Float64Array.from(classWeights) : classWeights, [1, classes], logits.dtype);
  const imageWeight = sum(mul(targets, w), -1); // [N]
  return div(sum(mul(imageWeight, sum(perClass, -1))), sum(imageWeight));
}

/** Mean squared error. */
export function mseLoss(pred: Tensor, target: Tensor): Tensor {
  const d = sub(pred, target);
  return mean(mul(d, d));
}

/**
 * GroupNorm (Wu & He 2018) of x [N, C, H, W]: each image's channels are split into `groups`
 * groups, each normalised over its channels and pixels, then scaled and shifted per channel
 * (PyTorch's nn.GroupNorm; a batch-independent alternative to BatchNorm). It needs no
 * batch statistics, so training and inference are the same graph. The normalisation runs as a
 * LayerNormalization over [N, G, C/G·H·W] with a unit scale (one fused ORT kernel forward).
 */
export function groupNorm(x: Tensor, groups: number, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  if (x.rank !== 4) fail(`groupNorm: expected x [N, C, H, W], got rank ${x.rank}`);
  if (x.shape.slice(1).some((d) => typeof d !== 'number')) fail('groupNorm: channels and spatial size must be static');
  const [, c, h, w] = x.shape as [unknown, number, number, number];
  if (!Number.isInteger(groups) || groups < 1 || c % groups !== 0) fail(`groupNorm: ${c} channels do not split into ${groups} groups`);
  for (const [name, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p.rank !== 1 || p.shape[0] !== c) fail(`groupNorm: ${name} must have shape [${c}], got [${p.shape.join(', ')}]`);
  }
  const size = (c / groups) * h * w;
  const Host = x.dtype === 'float64' ? Float64Array : Float32Array;
  const unit = x.graph.constant(new Host(size).fill(1), [size], x.dtype);
  const zero = x.graph.constant(new Host(size), [size], x.dtype);
  const normed = reshape(layerNorm(reshape(x, [-1, groups, size]), unit, zero, eps), [-1, c, h, w]);
  return add(mul(normed, reshape(weight, [c, 1, 1])), reshape(bias, [c, 1, 1]));
}
