/**
 * CvT's blocks in Hugging Face's layout (`CvtForImageClassification`): the convolutional token
 * embedding, the depthwise-conv + BatchNorm projections of q / k / v, the attention and MLP layer
 * and the stage that chains them. The model assembly is in cvt.ts.
 */
import type { Tensor } from '../ir/tensor.js';
import { BATCH } from '../ir/shape.js';
import { add, concat, expand, geluRecomputedInBackward, matmul, mT, mul, reshape, slice, softmax, transpose } from '../ops/index.js';
import { Random } from '../random.js';
import { Module } from '../nn/module.js';
import { BatchNorm2d, Conv2d, LayerNorm, Linear } from '../nn/layers.js';
import { truncNormal, zeros } from '../nn/init.js';
import type { CvtConfig } from './cvt.js';

/** A Conv2d initialised as HF's _init_weights: trunc-normal(0.02) weight, zero bias. */
class HfConv2d extends Conv2d {
  constructor(inChans: number, outChans: number, kernel: number, rng: Random, opts: { stride?: number; padding?: number; groups?: number; bias?: boolean }) {
    super(inChans, outChans, kernel, rng, opts);
    this.addParam('weight', [outChans, inChans / (opts.groups ?? 1), kernel, kernel], truncNormal(0.02), rng); // same key order
    if (opts.bias ?? true) this.addParam('bias', [outChans], zeros());
  }
}

/** HF's `nn.Linear` wrapped as `<name>.dense`. */
class Dense extends Module {
  readonly dense: Linear;
  constructor(inFeatures: number, outFeatures: number, rng: Random, bias = true) {
    super();
    this.dense = this.addChild('dense', new Linear(inFeatures, outFeatures, rng, { bias }));
  }
}

/** Convolutional token embedding: image or map [B, C, H, W] → tokens [B, H'W', D] (conv, then LayerNorm). */
export class ConvEmbeddings extends Module {
  readonly projection: Conv2d;
  readonly normalization: LayerNorm;

  constructor(inChans: number, dim: number, kernel: number, stride: number, padding: number, rng: Random) {
    super();
    this.projection = this.addChild('projection', new HfConv2d(inChans, dim, kernel, rng, { stride, padding }));
    this.normalization = this.addChild('normalization', new LayerNorm(dim, 1e-5));
  }

  forward(x: Tensor): { tokens: Tensor; h: number; w: number } {
    const y = this.projection.forward(x); // [B, D, H', W']
    const [, d, h, w] = y.shape as [unknown, number, number, number];
    const tokens = this.scoped(x.graph, () => transpose(reshape(y, [-1, d, h * w]), [0, 2, 1])); // [B, H'W', D]
    return { tokens: this.normalization.forward(tokens), h, w };
  }
}

/** Depthwise conv + BatchNorm over the token map: [B, D, H, W] → tokens [B, H'W', D]. */
export class ConvProjection extends Module {
  readonly convolution: Conv2d;
  readonly normalization: BatchNorm2d;

  constructor(dim: number, kernel: number, padding: number, stride: number, rng: Random) {
    super();
    this.convolution = this.addChild('convolution', new HfConv2d(dim, dim, kernel, rng, { stride, padding, groups: dim, bias: false }));
    this.normalization = this.addChild('normalization', new BatchNorm2d(dim));
  }

  forward(fmap: Tensor, train: boolean): Tensor {
    const y = this.normalization.forward(this.convolution.forward(fmap), { train }); // [B, D, H', W']
    const [, d, h, w] = y.shape as [unknown, number, number, number];
    return this.scoped(fmap.graph, () => transpose(reshape(y, [-1, d, h * w]), [0, 2, 1])); // [B, H'W', D]
  }
}

/** HF's wrapper level `convolution_projection_{query,key,value}.convolution_projection`. */
class QkvProjection extends Module {
  readonly convolutionProjection: ConvProjection;
  constructor(...args: ConstructorParameters<typeof ConvProjection>) {
    super();
    this.convolutionProjection = this.addChild('convolution_projection', new ConvProjection(...args));
  }
}

/** Convolutional projection attention: tokens [B, (1 +) HW, D] → [B, (1 +) HW, D] before `output.dense`. */
export class CvtSelfAttention extends Module {
  readonly convQuery: QkvProjection;
  readonly convKey: QkvProjection;
  readonly convValue: QkvProjection;
  readonly projectionQuery: Linear;
  readonly projectionKey: Linear;
  readonly projectionValue: Linear;

  constructor(readonly dim: number, readonly numHeads: number, readonly withCls: boolean, rng: Random,
    o: { kernel: number; paddingQ: number; strideQ: number; paddingKv: number; strideKv: number; qkvBias: boolean }) {
    super();
    if (dim % numHeads !== 0) throw new RangeError(`CvT attention: width ${dim} is not divisible by ${numHeads} heads`);
    this.convQuery = this.addChild('convolution_projection_query', new QkvProjection(dim, o.kernel, o.paddingQ, o.strideQ, rng));
    this.convKey = this.addChild('convolution_projection_key', new QkvProjection(dim, o.kernel, o.paddingKv, o.strideKv, rng));
    this.convValue = this.addChild('convolution_projection_value', new QkvProjection(dim, o.kernel, o.paddingKv, o.strideKv, rng));
    this.projectionQuery = this.addChild('projection_query', new Linear(dim, dim, rng, { bias: o.qkvBias }));
    this.projectionKey = this.addChild('projection_key', new Linear(dim, dim, rng, { bias: o.qkvBias }));
    this.projectionValue = this.addChild('projection_value', new Linear(dim, dim, rng, { bias: o.qkvBias }));
  }

  forward(x: Tensor, h: number, w: number, train: boolean): Tensor {
    const g = x.graph;
    const d = this.dim;
    const heads = this.numHeads;
    const n = h * w;
    const [cls, fmap] = this.scoped(g, () => {
      const cls = this.withCls ? slice(x, [1], [0], [1]) : undefined; // [B, 1, D]
      const patches = this.withCls ? slice(x, [1], [1], [1 + n]) : x; // [B, HW, D]
      return [cls, reshape(transpose(patches, [0, 2, 1]), [-1, d, h, w])] as const; // [B, D, H, W]
    });
    const project = (conv: QkvProjection, linear: Linear) => {
      const t = conv.convolutionProjection.forward(fmap, train); // [B, N', D]
      const withCls = cls ? this.scoped(g, () => concat([cls, t], 1)) : t; // [B, 1 + N', D]
      const y = linear.forward(withCls);
      const len = y.shape[1] as number;
      return this.scoped(g, () => transpose(reshape(y, [-1, len, heads, d / heads]), [0, 2, 1, 3])); // [B, h, T, d]
    };
    const q = project(this.convQuery, this.projectionQuery);
    const k = project(this.convKey, this.projectionKey);
    const v = project(this.convValue, this.projectionValue);
    return this.scoped(g, () => {
      const attn = softmax(mul(matmul(q, mT(k)), d ** -0.5), -1); // [B, h, Tq, Tkv], HF's scale: the stage width
      const tq = q.shape[2] as number;
      return reshape(transpose(matmul(attn, v), [0, 2, 1, 3]), [-1, tq, d]); // [B, Tq, D]
    });
  }
}

/** HF's `attention` level: `attention.attention` (the projections) and `attention.output.dense`. */
class CvtAttention extends Module {
  readonly attention: CvtSelfAttention;
  readonly output: Dense;
  constructor(dim: number, numHeads: number, withCls: boolean, rng: Random, o: ConstructorParameters<typeof CvtSelfAttention>[4]) {
    super();
    this.attention = this.addChild('attention', new CvtSelfAttention(dim, numHeads, withCls, rng, o));
    this.output = this.addChild('output', new Dense(dim, dim, rng));
  }
}

/** One layer: x + attn(layernorm_before(x)), then output(gelu(intermediate(layernorm_after(·)))) + residual. */
export class CvtLayer extends Module {
  readonly attention: CvtAttention;
  readonly intermediate: Dense;
  readonly output: Dense;
  readonly layernormBefore: LayerNorm;
  readonly layernormAfter: LayerNorm;

  constructor(dim: number, numHeads: number, mlpRatio: number, withCls: boolean, rng: Random, o: ConstructorParameters<typeof CvtSelfAttention>[4]) {
    super();
    const hidden = Math.floor(dim * mlpRatio); // HF: int(embed_dim * mlp_ratio)
    this.attention = this.addChild('attention', new CvtAttention(dim, numHeads, withCls, rng, o));
    this.intermediate = this.addChild('intermediate', new Dense(dim, hidden, rng));
    this.output = this.addChild('output', new Dense(hidden, dim, rng));
    this.layernormBefore = this.addChild('layernorm_before', new LayerNorm(dim, 1e-5));
    this.layernormAfter = this.addChild('layernorm_after', new LayerNorm(dim, 1e-5));
  }

  /** `scale`: drop path's per-sample scales [B, 1, 1] of the attention branch and of the whole output (HF's placement). */
  forward(x: Tensor, h: number, w: number, train: boolean, scale?: { attn: Tensor; out: Tensor }): Tensor {
    const g = x.graph;
    const a = this.attention.output.dense.forward(this.attention.attention.forward(this.layernormBefore.forward(x), h, w, train));
    const x1 = this.scoped(g, () => add(x, scale ? mul(a, scale.attn) : a));
    // the GELU output is recomputed for the backward pass, not saved (measured: 0.6 GB of cvt_13's training peak at batch 32)
    const m = this.output.dense.forward(this.scoped(g, () => geluRecomputedInBackward(this.intermediate.dense.forward(this.layernormAfter.forward(x1)))));
    return this.scoped(g, () => {
      const y = add(m, x1);
      return scale ? mul(y, scale.out) : y;
    });
  }
}

/** HF's `embedding.convolution_embeddings` wrapper level. */
class CvtEmbeddings extends Module {
  readonly convolutionEmbeddings: ConvEmbeddings;
  constructor(...args: ConstructorParameters<typeof ConvEmbeddings>) {
    super();
    this.convolutionEmbeddings = this.addChild('convolution_embeddings', new ConvEmbeddings(...args));
  }
}

/** A stage: map [B, C, H, W] → tokens [B, (1 +) H'W', D] on an H' × W' grid. */
export class CvtStage extends Module {
  /** The class token joins here (the last stage, when the config has one). */
  readonly withCls: boolean;
  readonly embedding: CvtEmbeddings;
  readonly layers: CvtLayer[];

  constructor(readonly c: CvtConfig, readonly s: number, rng: Random) {
    super();
    const last = s === c.depth.length - 1;
    this.withCls = last && c.clsToken;
    if (this.withCls) this.addParam('cls_token', [1, 1, c.embedDim[s]!], truncNormal(0.02), rng);
    const inChans = s === 0 ? c.inChans : c.embedDim[s - 1]!;
    this.embedding = this.addChild('embedding', new CvtEmbeddings(inChans, c.embedDim[s]!, c.patchSizes[s]!, c.patchStride[s]!, c.patchPadding[s]!, rng));
    const o = { kernel: c.kernelQkv[s]!, paddingQ: c.paddingQ[s]!, strideQ: c.strideQ[s]!, paddingKv: c.paddingKv[s]!, strideKv: c.strideKv[s]!, qkvBias: c.qkvBias[s]! };
    this.layers = Array.from({ length: c.depth[s]! }, (_, m) => this.addChild(`layers.${m}`, new CvtLayer(c.embedDim[s]!, c.numHeads[s]!, c.mlpRatio[s]!, this.withCls, rng, o)));
  }

  forward(x: Tensor, train: boolean, scaleOf: (m: number) => { attn: Tensor; out: Tensor } | undefined): { tokens: Tensor; h: number; w: number } {
    const g = x.graph;
    const e = this.embedding.convolutionEmbeddings.forward(x); // [B, HW, D]
    let tokens = e.tokens;
    if (this.withCls) {
      const d = this.c.embedDim[this.s]!;
      tokens = this.scoped(g, () => concat([expand(this.p(g, 'cls_token'), [BATCH, 1, d]), e.tokens], 1)); // [B, 1 + HW, D]
    }
    this.layers.forEach((layer, m) => { tokens = layer.forward(tokens, e.h, e.w, train, scaleOf(m)); });
    return { tokens, h: e.h, w: e.w };
  }
}
