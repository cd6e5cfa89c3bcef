/**
 * Exact softmax attention computed by query chunks, with a backward pass that recomputes each
 * chunk's probabilities instead of keeping them — the memory schedule of FlashAttention (Dao et
 * al. 2022, https://arxiv.org/abs/2205.14135) at the granularity of ONNX ops. As a composite of
 * primitives, autodiff would keep every chunk's probabilities [B, H, c, N] for softmax's VJP, so
 * a training step would hold all of [B, H, N, N] anyway; as one primitive it keeps only q, k, v
 * and the output, and its backward builds one chunk's [B, H, c, N] at a time.
 *
 *   forward, per chunk of query rows Q_c (scaled by 1/√D):  P_c = softmax(Q_c Kᵀ),  O_c = P_c V
 *   backward (g = dO):  δ_c = rowsum(dO_c ⊙ O_c)  (= Σ_j P_ij dP_ij)
 *     dP_c = dO_c Vᵀ,  dS_c = P_c ⊙ (dP_c − δ_c),  dQ_c = dS_c K / √D,  dK = Σ_c dS_cᵀ Q_c,  dV = Σ_c P_cᵀ dO_c
 */
import type { RuleTable } from './prim.js';
import { apply, fail } from './apply.js';
import type { Tensor } from '../ir/tensor.js';
import { dimEquals, formatShape } from '../ir/shape.js';
import { add, mul, sub } from './elementwise.js';
import { sum } from './reduce.js';
import { concat, mT, slice } from './movement.js';
import { matmul } from './linalg.js';
import { softmax } from './nn.js';

export interface AttentionAttrs {
  /** q, k, v [..., N, D] → softmax(q kᵀ / √D) v, `chunk` query rows at a time. */
  chunkedAttention: { readonly chunk: number };
}

/** [start, end) of each chunk of n rows. */
const chunks = (n: number, c: number): [number, number][] =>
  Array.from({ length: Math.ceil(n / c) }, (_, i) => [i * c, Math.min(n, (i + 1) * c)]);

export const attentionRules: RuleTable<keyof AttentionAttrs> = {
  chunkedAttention: {
    infer: ([q, k, v], { chunk }) => {
      if (!Number.isInteger(chunk) || chunk < 1) fail(`chunk must be a positive integer, got ${chunk}`);
      const r = q!.shape.length;
      if (r < 2 || k!.shape.length !== r || v!.shape.length !== r) fail('q, k, v must have the same rank ≥ 2');
      const [n, d] = [q!.shape[r - 2]!, q!.shape[r - 1]!];
      if (!dimEquals(k!.shape[r - 1]!, d)) fail(`q and k differ in their last axis: ${formatShape(q!.shape)}, ${formatShape(k!.shape)}`);
      if (!dimEquals(k!.shape[r - 2]!, v!.shape[r - 2]!)) fail(`k and v differ in their token axis: ${formatShape(k!.shape)}, ${formatShape(v!.shape)}`);
      if (typeof n !== 'number') fail('the query token axis must be static');
      if (q!.dtype !== k!.dtype || q!.dtype !== v!.dtype) fail(`q, k, v dtypes differ: ${q!.dtype}, ${k!.dtype}, ${v!.dtype}`);
      return { dtype: q!.dtype, shape: [...q!.shape.slice(0, r - 1), v!.shape[r - 1]!] };
    },
    vjp: ({ g, inputs: [q, k, v], out, attrs: { chunk }, needs }) => {
      const r = q!.rank;
      const n = q!.shape[r - 2] as number;
      const scale = (q!.shape[r - 1] as number) ** -0.5;
      const rows = (x: Tensor, s: number, e: number) => slice(x, [r - 2], [s], [e]);
      const kT = mT(k!);
      const vT = mT(v!);
      const dq: Tensor[] = [];
      let dk: Tensor | undefined;
      let dv: Tensor | undefined;
      // ORT orders independent nodes itself, and left alone it recomputes every chunk's P and dS
      // first and runs the dK, dV products at the end, so all of them are alive at once (measured:
      // 2·N² floats per head). Each chunk's scores therefore take a zero-valued input from the
      // previous chunk's dK and dV (one element of each, times 0), so chunk i + 1 starts after
      // chunk i's [c, N] tensors are consumed and freed. (A non-finite gradient there would turn
      // 0 · it into NaN in dq, but a non-finite dK or dV already spoils the whole step.)
      const corner = (x: Tensor) => slice(x, [r - 2, r - 1], [0, 0], [1, 1]); // [..., 1, 1]
      let order: Tensor | undefined;
      for (const [s, e] of chunks(n, chunk)) {
        const qc0 = mul(rows(q!, s, e), scale); // [..., c, D]
        const qc = order ? add(qc0, mul(order, 0)) : qc0;
        const p = softmax(matmul(qc, kT), -1); // [..., c, N], recomputed
        const gc = rows(g, s, e); // [..., c, Dv]
        const delta = sum(mul(gc, rows(out, s, e)), -1, true); // [..., c, 1]
        const ds = mul(p, sub(matmul(gc, vT), delta)); // [..., c, N]
        if (needs[0]) dq.push(mul(matmul(ds, k!), scale));
        if (needs[1]) { const t = matmul(mT(ds), qc); dk = dk ? add(dk, t) : t; }
        if (needs[2]) { const t = matmul(mT(p), gc); dv = dv ? add(dv, t) : t; }
        const done = [dk, dv].filter((t): t is Tensor => t !== undefined).map(corner);
        order = done.length === 2 ? add(done[0]!, done[1]!) : done[0] ?? (needs[0] ? corner(dq[dq.length - 1]!) : undefined);
      }
      return [needs[0] ? (dq.length > 1 ? concat(dq, r - 2) : dq[0]!) : null, dk ?? null, dv ?? null];
    },
    emit: (ctx, { inputs: [q, k, v], out, attrs: { chunk }, inTypes }) => {
      const { shape, dtype } = inTypes[0]!;
      const r = shape.length;
      const n = shape[r - 2] as number;
      const qs = ctx.op('Mul', [q!, ctx.scalar((shape[r - 1] as number) ** -0.5, dtype)]);
      const perm = [...Array(r - 2).keys(), r - 1, r - 2];
      const kT = ctx.op('Transpose', [k!], { perm: { ints: perm } });
      const parts = chunks(n, chunk).map(([s, e]) => {
        const qc = ctx.op('Slice', [qs, ctx.int64s([s]), ctx.int64s([e]), ctx.int64s([r - 2])]);
        const p = ctx.op('Softmax', [ctx.op('MatMul', [qc, kT])], { axis: { i: -1 } });
        return ctx.op('MatMul', [p, v!]);
      });
      if (parts.length === 1) ctx.op('Identity', parts, {}, out);
      else ctx.op('Concat', parts, { axis: { i: r - 2 } }, out);
    },
  },
};

/** softmax(q kᵀ / √D) v over q, k, v [..., N, D], `chunk` query rows at a time, keeping no [N, N] tensor for the backward pass. */
export const chunkedAttention = (q: Tensor, k: Tensor, v: Tensor, chunk: number): Tensor => apply('chunkedAttention', [q, k, v], { chunk });
