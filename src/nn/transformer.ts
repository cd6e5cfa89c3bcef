/**
 * The pre-norm transformer block of ViT (Dosovitskiy et al. 2020, https://arxiv.org/abs/2010.11929),
 * laid out as timm's `vision_transformer.py`: Attention (fused qkv) → Mlp → Block. How the heads'
 * q, k, v become their output is the attention mechanism's (src/nn/attention/: softmax by default,
 * performer, linear, sparse, axial); the keys stay attn.qkv and attn.proj whichever it is.
 */
import type { Tensor } from '../ir/tensor.js';
import { gelu, matmul, mean, mul, reshape, slice, transpose, add } from '../ops/index.js';
import type { Random } from '../random.js';
import { Module } from './module.js';
import { LayerNorm, Linear } from './layers.js';
import { attentionConfigOf, createMechanism, mechanismChildName, type AttentionConfig, type AttentionMechanism, type TokenLayout } from './attention/index.js';
import { softmaxScores } from './attention/mechanism.js';
import { policyAttention } from './dynamic_vit.js';

/** The mechanism and its options; `layout` (the token grid) for axial and sparse, `seed` for Performer's features. */
export type MechanismOptions = Partial<AttentionConfig> & { layout?: TokenLayout; seed?: number };

export interface AttentionOptions { qkvBias?: boolean; mechanism?: MechanismOptions }

/**
 * Token merging's hooks into a block (src/nn/tome.ts): `logitBias` [B, 1, 1, N] is added to the
 * softmax logits (proportional attention), and `between` runs on the attention branch's result
 * and the keys averaged over heads [B, N, D·H/H] before the MLP (the merge).
 */
export interface MergeHooks {
  logitBias?: Tensor;
  /** DynamicViT's training policy [B, N, 1]: dropped tokens (0) are masked out as keys (src/nn/dynamic_vit.ts). */
  policy?: Tensor;
  between?(x: Tensor, keys: Tensor): Tensor;
}

export class Attention extends Module {
  readonly headDim: number;
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly mechanism: AttentionMechanism;

  constructor(readonly dim: number, readonly numHeads: number, rng: Random, { qkvBias = true, mechanism = {} }: AttentionOptions = {}) {
    super();
    if (dim % numHeads !== 0) throw new RangeError(`Attention: dim ${dim} is not divisible by ${numHeads} heads`);
    this.headDim = dim / numHeads;
    this.qkv = this.addChild('qkv', new Linear(dim, dim * 3, rng, { bias: qkvBias }));
    this.proj = this.addChild('proj', new Linear(dim, dim, rng));
    const { layout, seed = 0, ...config } = mechanism;
    const m = createMechanism({ headDim: this.headDim, numHeads, layout, seed }, config);
    this.mechanism = this.addChild(mechanismChildName[attentionConfigOf(config).attnType], m);
  }

  /**
   * Returns the output and the attention probabilities [B, H, N, N]: always for unchunked softmax
   * attention; for the other mechanisms only when `withAttention` (the output is then computed
   * through that matrix, O(N²)).
   */
  forwardWithAttention(x: Tensor): { out: Tensor; attn: Tensor; keys: () => Tensor };
  forwardWithAttention(x: Tensor, withAttention: boolean, logitBias?: Tensor, policy?: Tensor): { out: Tensor; attn?: Tensor; keys: () => Tensor };
  forwardWithAttention(x: Tensor, withAttention = true, logitBias?: Tensor, policy?: Tensor): { out: Tensor; attn?: Tensor; keys: () => Tensor } {
    return this.scoped(x.graph, () => {
      const [, n, c] = x.shape as [unknown, number, number];
      const h = this.numHeads;
      const d = this.headDim;
      // One transpose to [3, B, H, N, D] and contiguous slices (timm's permute(2, 0, 3, 1, 4)):
      // their gradients concatenate along the leading axis, and kᵀ is left to the MatMul, which
      // ORT fuses as a transposed operand.
      const qkv = transpose(reshape(this.qkv.forward(x), [-1, n, 3, h, d]), [2, 0, 3, 1, 4]); // [3, B, H, N, D]
      const part = (i: number) => reshape(slice(qkv, [0], [i], [i + 1]), [-1, h, n, d]); // [B, H, N, D]
      const [q, k, v] = [part(0), part(1), part(2)];
      const { out, attn } = policy ? this.masked(q, k, v, policy)
        : logitBias ? this.biased(q, k, v, logitBias) : this.mechanism.attendWithMatrix(q, k, v, withAttention); // [B, H, N, D]
      const y = reshape(transpose(out, [0, 2, 1, 3]), [-1, n, c]); // [B, N, C]
      return { out: this.proj.forward(y), attn, keys: () => this.scoped(x.graph, () => mean(k, 1)) }; // keys: [B, N, D]
    });
  }

  /** Softmax attention with an additive logit bias (token merging's proportional attention). */
  private biased(q: Tensor, k: Tensor, v: Tensor, bias: Tensor): { out: Tensor; attn: Tensor } {
    if (this.mechanism.type !== 'softmax') throw new RangeError(`${this.path || 'attention'}: token merging needs attn_type=softmax, got ${this.mechanism.type}`);
    const attn = softmaxScores(q, k, bias); // [B, H, N, N]
    return { out: matmul(attn, v), attn };
  }

  /** Softmax attention under DynamicViT's token policy (its training path). */
  private masked(q: Tensor, k: Tensor, v: Tensor, policy: Tensor): { out: Tensor; attn: Tensor } {
    if (this.mechanism.type !== 'softmax') throw new RangeError(`${this.path || 'attention'}: DynamicViT pruning needs attn_type=softmax, got ${this.mechanism.type}`);
    return policyAttention(q, k, v, policy);
  }

  forward(x: Tensor): Tensor {
    return this.forwardWithAttention(x, false).out;
  }
}

export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(inFeatures: number, hiddenFeatures: number, rng: Random) {
    super();
    this.fc1 = this.addChild('fc1', new Linear(inFeatures, hiddenFeatures, rng));
    this.fc2 = this.addChild('fc2', new Linear(hiddenFeatures, inFeatures, rng));
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.scoped(x.graph, () => gelu(this.fc1.forward(x))));
  }
}

export interface BlockOptions { mlpRatio?: number; qkvBias?: boolean; eps?: number; attention?: MechanismOptions }

export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;

  constructor(dim: number, numHeads: number, rng: Random, { mlpRatio = 4, qkvBias = true, eps = 1e-6, attention }: BlockOptions = {}) {
    super();
    this.norm1 = this.addChild('norm1', new LayerNorm(dim, eps));
    this.attn = this.addChild('attn', new Attention(dim, numHeads, rng, { qkvBias, mechanism: attention }));
    this.norm2 = this.addChild('norm2', new LayerNorm(dim, eps));
    this.mlp = this.addChild('mlp', new Mlp(dim, Math.round(dim * mlpRatio), rng));
  }

  /**
   * x + attn(norm1(x)), then + mlp(norm2(x)). `residualScale` multiplies each branch: drop-path
   * passes a per-sample keep mask divided by the keep probability [B, 1, 1]. The attention
   * probabilities come as Attention.forwardWithAttention gives them. `merge` (token merging)
   * biases the attention logits and reduces the tokens between the two branches.
   */
  forwardWithAttention(x: Tensor, residualScale?: { attn: Tensor; mlp: Tensor }): { out: Tensor; attn: Tensor };
  forwardWithAttention(x: Tensor, residualScale: { attn: Tensor; mlp: Tensor } | undefined, withAttention: boolean, merge?: MergeHooks): { out: Tensor; attn?: Tensor };
  forwardWithAttention(x: Tensor, residualScale?: { attn: Tensor; mlp: Tensor }, withAttention = true, merge?: MergeHooks): { out: Tensor; attn?: Tensor } {
    const { out: a, attn, keys } = this.attn.forwardWithAttention(this.norm1.forward(x), withAttention, merge?.logitBias, merge?.policy);
    const g = x.graph;
    const scale = (t: Tensor, s?: Tensor) => (s ? this.scoped(g, () => mul(t, s)) : t);
    let x1 = this.scoped(g, () => add(x, scale(a, residualScale?.attn)));
    if (merge?.between) x1 = this.scoped(g, () => merge.between!(x1, keys()));
    const m = this.mlp.forward(this.norm2.forward(x1));
    return { out: this.scoped(g, () => add(x1, scale(m, residualScale?.mlp))), attn };
  }

  forward(x: Tensor): Tensor {
    return this.forwardWithAttention(x, undefined, false).out;
  }
}
