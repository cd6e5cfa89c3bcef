/**
 * MAE's per-sample token shuffle as two primitives whose backward passes are each other: keeping
 * the visible patches (forward_encoder's gather by ids_keep) and putting them back in patch order
 * with a fill token at the removed ones (forward_decoder's concat of mask tokens and gather by
 * ids_restore).
 *
 * As gathers along the token axis, their VJPs would be scatter-adds into zeros (ONNX
 * ScatterElements with an index tensor expanded to [B, ·, D]), and ORT's scatter-add is the
 * slowest kernel per element of the MAE step (profiled: ~12 ms of a ~800 ms step, more than the
 * two forward gathers together). But ids_keep is injective and ids_restore is its inverse on the
 * kept patches (ids_restore[b, ids_keep[b, r]] = r for r < K), so each backward is again a
 * row-gather: the cotangent of the kept rows is the unshuffled cotangent read at ids_keep, and
 * the cotangent of the patches is the kept rows' cotangent read at ids_restore, zero where a
 * patch was removed (ids_restore ≥ K). Both emit ONNX GatherND with batch_dims 1, which copies
 * whole rows and needs no [B, ·, D] index tensor.
 *
 * The caller guarantees the pair is a masking: idsKeep [B, K] are distinct patches of [0, N) and
 * idsRestore [B, N] is the inverse of argsort order, as `maskFromNoise` makes them.
 */
import type { RuleTable, EmitContext } from './prim.js';
import { apply, fail } from './apply.js';
import type { Tensor } from '../ir/tensor.js';
import { dimEquals, formatShape } from '../ir/shape.js';
import { cast, greaterEqual, mul } from './elementwise.js';
import { unsqueeze } from './movement.js';

type NoAttrs = Record<string, never>;

export interface TokenShuffleAttrs {
  /** x [B, N, D], idsKeep [B, K], idsRestore [B, N] → x's kept rows [B, K, D]. */
  keepTokens: NoAttrs;
  /** visible [B, K, D], fill [1 or B, 1, D], idsRestore [B, N], idsKeep [B, K] → [B, N, D] in patch order. */
  unshuffleTokens: NoAttrs;
}

function checkIds(ids: readonly { dtype: string; shape: readonly unknown[] }[]): void {
  for (const t of ids) if (t.dtype !== 'int64' || t.shape.length !== 2) fail(`token indices must be int64 [B, L], got ${t.dtype} of rank ${t.shape.length}`);
}

/** GatherND(rows [B, M, D], ids [B, L], batch_dims 1) → [B, L, D]. */
function emitRowGather(ctx: EmitContext, rows: string, ids: string, out: string): void {
  ctx.op('GatherND', [rows, ctx.op('Unsqueeze', [ids, ctx.int64s([2])])], { batch_dims: { i: 1 } }, out);
}

export const tokenShuffleRules: RuleTable<keyof TokenShuffleAttrs> = {
  keepTokens: {
    infer: ([x, keep, restore]) => {
      checkIds([keep!, restore!]);
      if (x!.shape.length !== 3) fail(`tokens must be [B, N, D], got ${formatShape(x!.shape)}`);
      if (!dimEquals(restore!.shape[1]!, x!.shape[1]!)) fail(`ids_restore ${formatShape(restore!.shape)} does not cover the ${String(x!.shape[1])} tokens`);
      return { dtype: x!.dtype, shape: [x!.shape[0]!, keep!.shape[1]!, x!.shape[2]!] };
    },
    // removed patches get no gradient: the zero fill of the unshuffle
    vjp: ({ g, inputs: [, keep, restore] }) => [unshuffleTokens(g, g.graph.scalar(0, g.dtype), restore!, keep!), null, null],
    emit: (ctx, { inputs: [x, keep], out }) => emitRowGather(ctx, x!, keep!, out),
  },
  unshuffleTokens: {
    infer: ([visible, fill, restore, keep]) => {
      checkIds([restore!, keep!]);
      if (visible!.shape.length !== 3) fail(`visible tokens must be [B, K, D], got ${formatShape(visible!.shape)}`);
      if (typeof visible!.shape[1] !== 'number') fail('the number of visible tokens must be static');
      if (!dimEquals(keep!.shape[1]!, visible!.shape[1]!)) fail(`ids_keep ${formatShape(keep!.shape)} does not match ${formatShape(visible!.shape)}`);
      if (fill!.dtype !== visible!.dtype) fail(`fill dtype ${fill!.dtype} differs from ${visible!.dtype}`);
      return { dtype: visible!.dtype, shape: [visible!.shape[0]!, restore!.shape[1]!, visible!.shape[2]!] };
    },
    // d visible: the cotangent at each kept patch; d fill: summed over the removed patches
    // (returned in the output's shape: autodiff sums the broadcast axes away)
    vjp: ({ g, inputs: [visible, , restore, keep], needs }) => {
      const k = visible!.shape[1] as number;
      const removed = needs[1] ? mul(g, unsqueeze(cast(greaterEqual(restore!, g.graph.scalar(k, 'int64')), g.dtype), [2])) : null;
      return [needs[0] ? keepTokens(g, keep!, restore!) : null, removed, null, null];
    },
    emit: (ctx, { inputs: [visible, fill, restore], inTypes: [vt], out }) => {
      const k = vt!.shape[1] as number;
      const d = vt!.shape[2]!;
      // rows [B, K + 1, D]: the visible tokens, then the fill at row K, where every removed patch points
      const fillRow = ctx.op('Expand', [fill!, ctx.shape([vt!.shape[0]!, 1, d])]);
      const rows = ctx.op('Concat', [visible!, fillRow], { axis: { i: 1 } });
      emitRowGather(ctx, rows, ctx.op('Min', [restore!, ctx.scalar(k, 'int64')]), out);
    },
  },
};

/** x [B, N, D] → the rows idsKeep [B, K] names, [B, K, D]; idsRestore is the masking's inverse permutation. */
export function keepTokens(x: Tensor, idsKeep: Tensor, idsRestore: Tensor): Tensor {
  return apply('keepTokens', [x, idsKeep, idsRestore], {});
}

/** visible [B, K, D] back in patch order [B, N, D], `fill` ([1 or B, 1, D], or a scalar) at the removed patches. */
export function unshuffleTokens(visible: Tensor, fill: Tensor, idsRestore: Tensor, idsKeep: Tensor): Tensor {
  return apply('unshuffleTokens', [visible, fill, idsRestore, idsKeep], {});
}
