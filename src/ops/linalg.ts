/** Batched matrix multiplication. */
import { broadcastShapes, dimEquals, formatDim, isBatchDim, type Dim } from '../ir/shape.js';
import type { Tensor } from '../ir/tensor.js';
import type { RuleTable } from './prim.js';
import { apply, fail } from './apply.js';
import { mT, reshape } from './movement.js';

export interface LinalgAttrs { matmul: Record<string, never> }

export const linalgRules: RuleTable<keyof LinalgAttrs> = {
  matmul: {
    infer: ([a, b]) => {
      if (a!.dtype !== b!.dtype) fail(`dtype mismatch: ${a!.dtype} vs ${b!.dtype}`);
      if (a!.shape.length < 2 || b!.shape.length < 2) fail('both operands need rank >= 2');
      const [m, k1] = a!.shape.slice(-2) as [Dim, Dim];
      const [k2, n] = b!.shape.slice(-2) as [Dim, Dim];
      if (!dimEquals(k1, k2)) fail(`inner dimensions differ: ${formatDim(k1)} vs ${formatDim(k2)}`);
      const batch = broadcastShapes(a!.shape.slice(0, -2), b!.shape.slice(0, -2)) ?? fail('batch dimensions do not broadcast');
      return { dtype: a!.dtype, shape: [...batch, m, n] };
    },
    // d(AB) = dA Bᵀ + Aᵀ dB
    vjp: ({ g, inputs: [a, b], needs }) => [
      needs[0] ? matmul(g, mT(b!)) : null,
      needs[1] ? weightGrad(a!, b!, g) : null,
    ],
    emit: (ctx, { inputs, out }) => void ctx.op('MatMul', inputs, {}, out),
  },
};

/**
 * Aᵀ dB for a shared 2-D right operand ([..., M, K] @ [K, N]): fold all leading axes into M, so
 * the weight gradient is one large GEMM rather than a batched one followed by a sum.
 */
function weightGrad(a: Tensor, b: Tensor, g: Tensor): Tensor {
  if (b.rank === 2 && a.rank > 2) {
    const k = a.shape[a.rank - 1]!;
    const n = g.shape[g.rank - 1]!;
    if (!isBatchDim(k) && !isBatchDim(n)) return matmul(mT(reshape(a, [-1, k])), reshape(g, [-1, n]));
  }
  return matmul(mT(a), g);
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  return apply('matmul', [a, b], {});
}
