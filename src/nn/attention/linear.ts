/**
 * Linear attention with the elu + 1 feature map — "Transformers are RNNs" (Katharopoulos et al.
 * 2020, https://arxiv.org/abs/2006.16236), as the authors' fast-transformers `LinearAttention`
 * computes it: φ(x) = elu(x) + 1 on the raw queries and keys (no 1/√D), then
 *
 *   out_i = φ(q_i) (Σ_j φ(k_j) v_jᵀ) / (φ(q_i) · Σ_j φ(k_j) + ε),  ε = 1e-6,
 *
 * in O(N D²): the [D, D] context Σ φ(k) vᵀ is formed once and no N × N matrix is built. The
 * implied attention matrix is A_ij = φ(q_i)·φ(k_j) / (φ(q_i)·Σφ(k) + ε).
 *
 * Prefix tokens are ordinary tokens: every token attends to every token.
 */
import type { Tensor } from '../../ir/tensor.js';
import { add, div, exp, matmul, minimum, mT, relu, sum } from '../../ops/index.js';
import { AttentionMechanism } from './mechanism.js';

/** fast-transformers' LinearAttention eps. */
export const LINEAR_EPS = 1e-6;

/** elu(x) + 1 = x + 1 for x > 0, eˣ otherwise: written as e^min(x, 0) + max(x, 0). */
export const eluPlusOne = (x: Tensor): Tensor => add(exp(minimum(x, 0)), relu(x));

export class LinearAttention extends AttentionMechanism {
  readonly type = 'linear';

  attend(q: Tensor, k: Tensor, v: Tensor): Tensor {
    return kernelAttention(eluPlusOne(q), eluPlusOne(k), v, LINEAR_EPS);
  }

  matrix(q: Tensor, k: Tensor): Tensor {
    return kernelMatrix(eluPlusOne(q), eluPlusOne(k), LINEAR_EPS);
  }
}

/** φq [B, H, N, m], φk [B, H, N, m], v [B, H, N, D] → φq (φkᵀ v) / (φq · Σφk + eps): O(N m D). */
export function kernelAttention(fq: Tensor, fk: Tensor, v: Tensor, eps: number): Tensor {
  const context = matmul(mT(fk), v); // [B, H, m, D]
  const ksum = sum(fk, 2, true); // [B, H, 1, m]
  const norm = matmul(fq, mT(ksum)); // [B, H, N, 1]
  return div(matmul(fq, context), eps ? add(norm, eps) : norm); // [B, H, N, D]
}

/** The matrix kernelAttention applies: φq φkᵀ / (φq · Σφk + eps) [B, H, N, N]. */
export function kernelMatrix(fq: Tensor, fk: Tensor, eps: number): Tensor {
  const scores = matmul(fq, mT(fk)); // [B, H, N, N]
  const norm = sum(scores, -1, true); // [B, H, N, 1]
  return div(scores, eps ? add(norm, eps) : norm);
}
