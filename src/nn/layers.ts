/** Basic layers: Linear, LayerNorm, Conv2d, Identity. Weights use PyTorch's layouts. */
import type { Tensor } from '../ir/tensor.js';
import type { Graph } from '../ir/graph.js';
import { ShapeError } from '../ir/errors.js';
import { formatShape } from '../ir/shape.js';
import { add, conv2d, groupNorm, layerNorm, matmul, reshape, transpose, type Conv2dOptions } from '../ops/index.js';
import type { Random } from '../random.js';
import { Module } from './module.js';
import { ones, truncNormal, uniformFanIn, zeros } from './init.js';

export class Linear extends Module {
  private readonly hasBias: boolean;

  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Random, { bias = true, std = 0.02 } = {}) {
    super();
    this.addParam('weight', [outFeatures, inFeatures], truncNormal(std), rng); // [out, in]
    if (bias) this.addParam('bias', [outFeatures], zeros());
    this.hasBias = bias;
  }

  /**
   * y = x Wᵀ + b over the last axis. Leading axes are folded into one first: ORT fuses a 2-D
   * MatMul + bias Add into a single Gemm, which saves a pass over the output (and the bias
   * gradient becomes a reduction over one axis).
   */
  forward(x: Tensor): Tensor {
    const g = x.graph;
    // checked before the fold, whose reshape would otherwise report the mismatch in its own terms
    if (x.shape[x.rank - 1] !== this.inFeatures) {
      throw new ShapeError(`${this.path || 'Linear'}: expected input [..., ${this.inFeatures}], got ${formatShape(x.shape)}`);
    }
    return this.scoped(g, () => {
      const x2 = x.rank > 2 ? reshape(x, [-1, this.inFeatures]) : x;
      const y = matmul(x2, transpose(this.p(g, 'weight'), [1, 0]));
      const out = this.hasBias ? add(y, this.p(g, 'bias')) : y;
      return x.rank > 2 ? reshape(out, [...x.shape.slice(0, -1), this.outFeatures]) : out;
    });
  }
}

export class LayerNorm extends Module {
  constructor(readonly dim: number, readonly eps = 1e-6) {
    super();
    this.addParam('weight', [dim], ones());
    this.addParam('bias', [dim], zeros());
  }

  forward(x: Tensor): Tensor {
    const g = x.graph;
    return this.scoped(g, () => layerNorm(x, this.p(g, 'weight'), this.p(g, 'bias'), this.eps));
  }
}

/** PyTorch's nn.GroupNorm over [N, C, H, W] (keys `weight`, `bias`). */
export class GroupNorm extends Module {
  constructor(readonly groups: number, readonly channels: number, readonly eps = 1e-5) {
    super();
    if (channels % groups !== 0) throw new RangeError(`GroupNorm: ${channels} channels do not split into ${groups} groups`);
    this.addParam('weight', [channels], ones());
    this.addParam('bias', [channels], zeros());
  }

  forward(x: Tensor): Tensor {
    const g = x.graph;
    return this.scoped(g, () => groupNorm(x, this.groups, this.p(g, 'weight'), this.p(g, 'bias'), this.eps));
  }
}

export class Conv2d extends Module {
  constructor(inChans: number, outChans: number, readonly kernel: number, rng: Random, readonly opts: Conv2dOptions & { bias?: boolean } = {}) {
    super();
    const groups = opts.groups ?? 1;
    const fanIn = (inChans / groups) * kernel * kernel;
    this.addParam('weight', [outChans, inChans / groups, kernel, kernel], uniformFanIn(fanIn), rng);
    if (opts.bias ?? true) this.addParam('bias', [outChans], uniformFanIn(fanIn), rng);
  }

  forward(x: Tensor): Tensor {
    const g = x.graph;
    return this.scoped(g, () => conv2d(x, this.p(g, 'weight'), (this.opts.bias ?? true) ? this.p(g, 'bias') : undefined, this.opts));
  }

  /** Applies the kernel to already-flattened patches [..., C·k·k] → [..., O] (a stride-k conv as a matmul). */
  scopedLinear(g: Graph, patches: Tensor, outChans: number): Tensor {
    return this.scoped(g, () => {
      const w = reshape(this.p(g, 'weight'), [outChans, -1]); // [O, C·k·k]
      const y = matmul(patches, transpose(w, [1, 0]));
      return (this.opts.bias ?? true) ? add(y, this.p(g, 'bias')) : y;
    });
  }
}

export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

export { BatchNorm2d, type BatchNormOptions } from './batch_norm.js';
