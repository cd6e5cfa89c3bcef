/**
 * BatchNorm2d as PyTorch keeps it (Ioffe & Szegedy 2015, https://arxiv.org/abs/1502.03167):
 * parameters `weight`, `bias` and buffers `running_mean`, `running_var`, `num_batches_tracked`
 * under timm's / PyTorch's keys.
 *
 * - Training (`forward(x, { train: true })`): the batch's statistics normalise (biased variance),
 *   and the running statistics move towards them (unbiased variance, as torch.nn.BatchNorm2d):
 *   running ← (1 − m)·running + m·batch with momentum m, or the cumulative average 1/t when
 *   momentum is null. The new buffer values leave the step as `buffer/<key>` outputs
 *   (Module.updateBuffer) and the trainer copies them back.
 * - Eval and export: the running statistics, folded into one affine x·scale + shift per channel,
 *   which ORT folds further into a preceding convolution when the weights are constants.
 *
 * `num_batches_tracked` is int64 in PyTorch; here, like every buffer, it is float32 (a count,
 * exact up to 2^24 ≈ 16.7 M steps). A saved tessera checkpoint holds it as an F32 scalar, which
 * torch's load_state_dict casts back into its int64 buffer; an I64 tensor from a timm checkpoint
 * is read as its value. It only matters for momentum null: with a momentum it is a counter.
 */
import type { Tensor } from '../ir/tensor.js';
import { ShapeError } from '../ir/errors.js';
import { formatShape } from '../ir/shape.js';
import { add, batchNorm, batchStatistics, dimSize, div, mul, reshape, sqrt, sub } from '../ops/index.js';
import { Module } from './module.js';
import { ones, zeros } from './init.js';

export interface BatchNormOptions {
  /** Added to the variance before the square root (PyTorch's default 1e-5). */
  eps?: number;
  /** Weight of the batch in the running statistics (0.1); null for the cumulative average. */
  momentum?: number | null;
}

export class BatchNorm2d extends Module {
  readonly eps: number;
  readonly momentum: number | null;

  constructor(readonly channels: number, { eps = 1e-5, momentum = 0.1 }: BatchNormOptions = {}) {
    super();
    this.eps = eps;
    this.momentum = momentum;
    this.addParam('weight', [channels], ones());
    this.addParam('bias', [channels], zeros());
    this.addBuffer('running_mean', [channels], zeros());
    this.addBuffer('running_var', [channels], ones());
    this.addBuffer('num_batches_tracked', [], zeros());
  }

  forward(x: Tensor, { train = false }: { train?: boolean } = {}): Tensor {
    if (x.rank !== 4 || x.shape[1] !== this.channels) {
      throw new ShapeError(`${this.path || 'BatchNorm2d'}: expected input [N, ${this.channels}, H, W], got ${formatShape(x.shape)}`);
    }
    const g = x.graph;
    return this.scoped(g, () => {
      const [weight, bias] = [this.p(g, 'weight'), this.p(g, 'bias')];
      if (train) {
        this.updateRunningStatistics(x);
        return batchNorm(x, weight, bias, this.eps);
      }
      const scale = div(weight, sqrt(add(this.b(g, 'running_var'), this.eps))); // [C]
      const shift = sub(bias, mul(this.b(g, 'running_mean'), scale));
      const c = this.channels;
      return add(mul(x, reshape(scale, [c, 1, 1])), reshape(shift, [c, 1, 1]));
    });
  }

  private updateRunningStatistics(x: Tensor): void {
    const g = x.graph;
    const c = this.channels;
    // the same statistics the batchNorm primitive normalises with (ORT computes them once)
    const { mean, variance } = batchStatistics(x);
    const [h, w] = [x.shape[2] as number, x.shape[3] as number];
    const n = x.shape[0]!;
    const count = typeof n === 'number' ? n * h * w : mul(dimSize(x, 0, x.dtype), n.batch * h * w);
    // PyTorch's running variance is the unbiased one: M/(M − 1) times the biased
    const unbiased = mul(reshape(variance, [c]), typeof count === 'number' ? count / (count - 1) : div(count, sub(count, 1)));
    const tracked = add(this.b(g, 'num_batches_tracked'), 1);
    const m = this.momentum ?? div(1, tracked);
    const blend = (name: string, batch: Tensor) => add(mul(this.b(g, name), typeof m === 'number' ? 1 - m : sub(1, m)), mul(batch, m));
    this.updateBuffer(g, 'running_mean', blend('running_mean', reshape(mean, [c])));
    this.updateBuffer(g, 'running_var', blend('running_var', unbiased));
    this.updateBuffer(g, 'num_batches_tracked', tracked);
  }
}
