/**
 * Token merging ("Token Merging: Your ViT But Faster", Bolya et al. 2023,
 * https://arxiv.org/abs/2210.09461): between a block's attention and its MLP, the r most similar
 * pairs of tokens are merged, so every later layer runs on r fewer tokens. No parameters: a model
 * trained without it runs with it.
 *
 * Bipartite soft matching: the tokens are split alternately into A (even positions) and B (odd);
 * each A token's best match in B is found by cosine similarity of the keys (mean over heads); the
 * r A tokens with the best matches are averaged into their B partners, weighted by how many
 * patches each already holds (`size`). The class and distillation tokens are never merged.
 * Everything is in the graph (TopK, GatherElements, ScatterElements), batch-dynamic: the token
 * count of each block is static, so the cost of the later layers really falls.
 */
import type { Tensor } from '../ir/tensor.js';
import { BATCH } from '../ir/shape.js';
import {
  add, argsort, cast, concat, div, expand, gather, gatherElements, log, matmul, max, mT, mul, reshape, scatterElementsAdd, slice, sqrt, sum, topk,
} from '../ops/index.js';

/** What travels between merging blocks: token sizes [B, T, 1] and, for maps, each token's patches [B, T, N₀]. */
export interface MergeState {
  size?: Tensor;
  source?: Tensor;
}

/** Which leading tokens are protected: class token at 0, distillation token at 1. */
export interface Protected {
  classToken: boolean;
  distillToken: boolean;
}

/** The number of tokens a block merges: r, at most half of the unprotected tokens (as ToMe caps it). */
export function mergeCount(tokens: number, r: number, { classToken, distillToken }: Protected): number {
  const guarded = (classToken ? 1 : 0) + (distillToken ? 1 : 0);
  return Math.max(0, Math.min(r, Math.floor((tokens - guarded) / 2)));
}

/** An additive score that removes a pair: far below any cosine similarity, and finite. */
const EXCLUDED = -1e9;

const positions = (x: Tensor, start: number, count: number) =>
  x.graph.constant(BigInt64Array.from({ length: count }, (_, i) => BigInt(start + 2 * i)), [count], 'int64');

/** x [B, T, C] split into A (even positions) and B (odd), [B, ⌈T/2⌉, C] and [B, ⌊T/2⌋, C]. */
function alternate(x: Tensor): [Tensor, Tensor] {
  const t = x.shape[1] as number;
  return [gather(x, positions(x, 0, Math.ceil(t / 2)), 1), gather(x, positions(x, 1, Math.floor(t / 2)), 1)];
}

/**
 * Bipartite soft matching on `metric` [B, T, C] (the keys averaged over heads): returns the merge
 * that sums r tokens of A into their matches in B, x [B, T, C] → [B, T − r, C], or undefined
 * when nothing is merged. The output keeps A's unmerged tokens (in position order when there is
 * a class token, so it stays first), then B (ToMe's layout; a distillation token stays second).
 */
export function bipartiteSoftMatching(metric: Tensor, r: number, prot: Protected): ((x: Tensor) => Tensor) | undefined {
  const t = metric.shape[1] as number;
  r = mergeCount(t, r, prot);
  if (r <= 0) return undefined;
  const g = metric.graph;
  const unit = div(metric, sqrt(sum(mul(metric, metric), -1, true))); // [B, T, C], unit rows
  const [a, b] = alternate(unit);
  const na = Math.ceil(t / 2);
  const nb = Math.floor(t / 2);
  let scores = matmul(a, mT(b)); // [B, Na, Nb] cosine similarities
  if (prot.classToken || prot.distillToken) {
    // the class token (A's first) merges into nothing; the distillation token (B's first) receives nothing
    const mask = new Float32Array(na * nb);
    for (let i = 0; i < na; i++) for (let j = 0; j < nb; j++) if ((prot.classToken && i === 0) || (prot.distillToken && j === 0)) mask[i * nb + j] = EXCLUDED;
    const m = g.constant(metric.dtype === 'float64' ? Float64Array.from(mask) : mask, [na, nb], metric.dtype);
    scores = add(scores, m);
  }
  const nodeMax = max(scores, -1); // [B, Na] each A token's best similarity
  const nodeIdx = topk(scores, 1, -1); // [B, Na, 1] …and its partner in B
  const edgeIdx = reshape(argsort(nodeMax, -1), [-1, na, 1]); // [B, Na, 1] A tokens, best match first
  let unmIdx = slice(edgeIdx, [1], [r], [na]); // [B, Na − r, 1] kept
  const srcIdx = slice(edgeIdx, [1], [0], [r]); // [B, r, 1] merged away
  const dstIdx = gatherElements(nodeIdx, srcIdx, 1); // [B, r, 1] where each goes
  if (prot.classToken) {
    // back to position order, so the class token stays first (indices < 2²⁴ are exact in float32)
    unmIdx = gatherElements(unmIdx, topk(cast(unmIdx, 'float32'), na - r, 1, false), 1);
  }
  return (x: Tensor) => {
    const c = x.shape[2] as number;
    const [src, dst] = alternate(x);
    const unm = gatherElements(src, expand(unmIdx, [BATCH, na - r, c]), 1); // [B, Na − r, C]
    const moved = gatherElements(src, expand(srcIdx, [BATCH, r, c]), 1); // [B, r, C]
    const merged = scatterElementsAdd(dst, expand(dstIdx, [BATCH, r, c]), moved, 1); // [B, Nb, C]
    if (prot.distillToken) {
      const lead = (y: Tensor, s: number, e: number) => slice(y, [1], [s], [e]);
      return concat([lead(unm, 0, 1), lead(merged, 0, 1), lead(unm, 1, na - r), lead(merged, 1, nb)], 1);
    }
    return concat([unm, merged], 1); // [B, T − r, C]
  };
}

/**
 * The size-weighted average merge: x and its sizes summed by `merge`, then x divided by the
 * merged size. Without sizes (before the first merge) every token counts 1. The source map
 * (which original patches each token holds) is merged alongside when `state.source` is set.
 */
export function mergeWeighted(merge: (x: Tensor) => Tensor, x: Tensor, state: MergeState): { x: Tensor; state: MergeState } {
  const t = x.shape[1] as number;
  const size = state.size ?? expand(x.graph.scalar(1, x.dtype), [BATCH, t, 1]); // [B, T, 1]
  const total = merge(mul(x, size));
  const merged = merge(size); // [B, T − r, 1]
  return { x: div(total, merged), state: { size: merged, source: state.source && merge(state.source) } };
}

/** The identity source map [B, T, T] a merging model starts from (each token holds itself). */
export function identitySource(x: Tensor): Tensor {
  const t = x.shape[1] as number;
  const eye = new Float32Array(t * t);
  for (let i = 0; i < t; i++) eye[i * t + i] = 1;
  return expand(x.graph.constant(x.dtype === 'float64' ? Float64Array.from(eye) : eye, [1, t, t], x.dtype), [BATCH, t, t]);
}

/** Proportional attention's bias: log(size) over the keys, [B, T, 1] → [B, 1, 1, T]. */
export function sizeBias(size: Tensor): Tensor {
  return reshape(log(size), [-1, 1, 1, size.shape[1] as number]); // [B, 1, 1, T]
}
