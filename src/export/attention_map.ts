/**
 * Attention rollout inside the exported graph (Abnar & Zuidema 2020,
 * https://arxiv.org/abs/2005.00928), so an .onnx file alone can draw an attention overlay: the
 * server and the browser read it as a second output, `attention_map`. It computes what the host
 * explainer computes with mean head fusion and no discarding (src/explain/rollout.ts
 * `attentionRollout` + `patchRow`, the source row chosen as `Explainer.source` does).
 */
import { identity } from '../explain/rollout.js';
import type { Tensor } from '../ir/tensor.js';
import type { ImageModel } from '../models/model.js';
import { requireTokenGrid } from '../explain/probe.js';
import { add, div, matmul, mean, slice, squeeze, sum } from '../ops/index.js';

export { ATTENTION_MAP_NAME } from './metadata.js';

/**
 * Per-block attention probabilities [B, H, T, T] → the rollout's explaining row over patches
 * [B, N], laid out by the model's token grid; `name` is the model in the error of a model without one.
 */
export function attentionMapGraph(model: ImageModel, attentions: readonly Tensor[], name?: string): Tensor {
  const { grid, prefix, pool } = requireTokenGrid(model, 'an attention map', { name });
  if (attentions.length === 0) throw new RangeError('attentionMapGraph: the model returned no attention tensors; call forward(x, { attention: true })');
  const tokens = attentions[0]!.shape[2] as number;
  if (tokens !== prefix + grid[0] * grid[1]) throw new RangeError(`attentionMapGraph: attentions over ${tokens} tokens, but the token grid has ${prefix} + ${grid[0]}×${grid[1]}`);
  const eye = attentions[0]!.graph.constant(identity(tokens), [tokens, tokens], 'float32'); // [T, T]
  let rollout: Tensor | undefined;
  for (const attn of attentions) {
    const withResidual = add(mean(attn, 1), eye); // [B, T, T]
    // row-normalising (A + I) equals the host's (A + I)/2 normalised
    const fused = div(withResidual, sum(withResidual, -1, true)); // [B, T, T]
    rollout = rollout ? matmul(fused, rollout) : fused; // R_0 = I, so R after block 0 is its fused matrix
  }
  const r = rollout!;
  // patch-mean pooling: the head sees the mean of the patch tokens, so their rows explain it
  if (pool === 'patch-mean') return mean(slice(r, [1, 2], [prefix, prefix], [tokens, tokens]), 1); // [B, N]
  return squeeze(slice(r, [1, 2], [0, prefix], [1, tokens]), 1); // [B, N]
}
