/**
 * DynamicViT token pruning ("DynamicViT: Efficient Vision Transformers with Dynamic Token
 * Sparsification", Rao et al. 2021, https://arxiv.org/abs/2106.02034), laid out as
 * raoyongming/DynamicViT's ViT variant so its checkpoints' `score_predictor.N.*` keys load.
 *
 * Before chosen blocks a small predictor scores every patch token (keep / drop, log-probabilities)
 * from its own features and the mean of the kept tokens' features. Training keeps the batch's
 * shape: a hard Gumbel-softmax decision (straight-through gradient) becomes a policy that masks
 * the dropped tokens out of attention as keys. Inference keeps the top-k tokens by score, so every
 * later block really runs on fewer tokens.
 */
import type { Tensor } from '../ir/tensor.js';
import { BATCH } from '../ir/shape.js';
import {
  add, cast, concat, div, exp, expand, gatherElements, gelu, greaterEqual, logSoftmax, matmul, max, mT, mul, reshape, slice, softmax, stopGradient, sub, sum, topk,
} from '../ops/index.js';
import type { Random } from '../random.js';
import { Module } from './module.js';
import { LayerNorm, Linear } from './layers.js';

/** The keep / drop scorer before a pruning block (the reference's PredictorLG). */
export class ScorePredictor extends Module {
  readonly norm: LayerNorm;
  readonly inProj: Linear;
  readonly out: Linear[];

  constructor(readonly dim: number, rng: Random) {
    super();
    // child names are the reference's nn.Sequential indices (in_conv.0 LayerNorm, in_conv.1 Linear, …)
    this.norm = this.addChild('in_conv.0', new LayerNorm(dim, 1e-5));
    this.inProj = this.addChild('in_conv.1', new Linear(dim, dim, rng));
    this.out = [
      this.addChild('out_conv.0', new Linear(dim, Math.floor(dim / 2), rng)),
      this.addChild('out_conv.2', new Linear(Math.floor(dim / 2), Math.floor(dim / 4), rng)),
      this.addChild('out_conv.4', new Linear(Math.floor(dim / 4), 2, rng)),
    ];
  }

  /**
   * Patch tokens x [B, N, C] and the policy [B, N, 1] (1 kept, 0 dropped so far) → log-probabilities
   * [B, N, 2] of (keep, drop). The second half of the channels is replaced by its policy-weighted
   * mean over the tokens (the global feature).
   */
  forward(x: Tensor, policy: Tensor): Tensor {
    const g = x.graph;
    const h = this.scoped(g, () => gelu(this.inProj.forward(this.norm.forward(x)))); // [B, N, C]
    const [, n, c] = h.shape as [unknown, number, number];
    const half = Math.floor(c / 2);
    const mixed = this.scoped(g, () => {
      const local = slice(h, [2], [0], [half]);
      const globalPart = div(sum(mul(slice(h, [2], [half], [c]), policy), 1, true), sum(policy, 1, true)); // [B, 1, C − C/2]
      return concat([local, expand(globalPart, [BATCH, n, c - half])], 2);
    });
    let y = gelu(this.out[0]!.forward(mixed));
    y = gelu(this.out[1]!.forward(y));
    return this.scoped(g, () => logSoftmax(this.out[2]!.forward(y), -1));
  }
}

/** The default pruning blocks: after a quarter, half and three quarters of the depth (3, 6, 9 of 12), distinct, inside the stack. */
export function defaultPruneLocs(depth: number): number[] {
  const locs = [1, 2, 3].map((q) => Math.round((depth * q) / 4)).filter((l) => l >= 1 && l < depth);
  return [...new Set(locs)];
}

/** Tokens kept at stage s (0-based) of N patches: ⌊N · ρ^(s+1)⌋ (the reference's int(init_n · ratio)), at least 1. */
export function keptCount(patches: number, keep: number, stage: number): number {
  return Math.max(1, Math.floor(patches * keep ** (stage + 1)));
}

/**
 * The hard Gumbel-softmax keep decision with the straight-through estimator: log-probabilities
 * [B, N, 2] plus Gumbel noise [B, N, 2] (drawn on the host) → [B, N, 1], 1 where keep wins. Its
 * value is the hard decision; its gradient that of softmax(scores + noise)'s keep probability.
 */
export function gumbelKeep(scores: Tensor, noise: Tensor): Tensor {
  const soft = slice(softmax(add(scores, noise), -1), [2], [0], [1]); // [B, N, 1], τ = 1
  const z = add(scores, noise);
  const hard = cast(greaterEqual(slice(z, [2], [0], [1]), slice(z, [2], [1], [2])), soft.dtype);
  return add(sub(hard, stopGradient(soft)), soft);
}

/**
 * Softmax attention masked by a token policy (training path): scores [B, H, N, N] and policy
 * [B, N, 1]; a dropped token is no key for any query but itself, and the eps terms keep a row of
 * dropped keys finite (as the reference does, eps = 1e-6).
 */
export function policySoftmax(logits: Tensor, policy: Tensor, eps = 1e-6): Tensor {
  const n = logits.shape[3] as number;
  const p = reshape(policy, [-1, 1, 1, n]); // [B, 1, 1, N]
  const eyeData = new Float32Array(n * n);
  for (let i = 0; i < n; i++) eyeData[i * n + i] = 1;
  const eye = logits.graph.constant(logits.dtype === 'float64' ? Float64Array.from(eyeData) : eyeData, [1, 1, n, n], logits.dtype);
  const keys = add(p, mul(sub(1, p), eye)); // [B, 1, N, N]
  const e = mul(exp(sub(logits, max(logits, -1, true))), keys);
  return div(add(e, eps / n), add(sum(e, -1, true), eps));
}

/** Scaled dot-product attention through policySoftmax: q, k, v [B, H, N, D]. */
export function policyAttention(q: Tensor, k: Tensor, v: Tensor, policy: Tensor): { out: Tensor; attn: Tensor } {
  const d = q.shape[q.rank - 1] as number;
  const attn = policySoftmax(matmul(mul(q, d ** -0.5), mT(k)), policy); // [B, H, N, N]
  return { out: matmul(attn, v), attn };
}

/**
 * Inference selection: tokens x [B, P + N, C] with P prefix tokens, keep-scores [B, N] → the
 * prefix and the `count` best-scoring patch tokens, [B, P + count, C] (in score order).
 */
export function selectTopTokens(x: Tensor, scores: Tensor, prefix: number, count: number): { x: Tensor; index: Tensor } {
  const [, t, c] = x.shape as [unknown, number, number];
  const index = reshape(topk(scores, count, 1), [-1, count, 1]); // [B, count, 1]
  const patches = slice(x, [1], [prefix], [t]);
  const kept = gatherElements(patches, expand(index, [BATCH, count, c]), 1);
  return { x: prefix > 0 ? concat([slice(x, [1], [0], [prefix]), kept], 1) : kept, index };
}
