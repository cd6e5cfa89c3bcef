/** Neural-network primitives that ONNX runs as fused kernels. */
import { onnxDTypeCode, type DType } from '../ir/dtype.js';
import { dimEquals, formatShape, normAxis, type Dim } from '../ir/shape.js';
import type { Tensor } from '../ir/tensor.js';
import type { EmitContext, RuleTable } from './prim.js';
import { apply, fail } from './apply.js';
import { add, div, erf, exp, mul, neg, sigmoid, sqrt, sub } from './elementwise.js';
import { mean, sum } from './reduce.js';
import { reshape } from './movement.js';
import { matmul } from './linalg.js';

type Pair = readonly [number, number];

export interface NnAttrs {
  softmax: { readonly axis: number };
  logSoftmax: { readonly axis: number };
  layerNorm: { readonly eps: number };
  normalized: { readonly eps: number };
  invStdOfNormalized: { readonly eps: number };
  batchNorm: { readonly eps: number };
  resizeBilinear: { readonly size: Pair; readonly alignCorners: boolean };
  gelu: { readonly recomputed?: boolean; readonly recomputeInBackward?: boolean };
  silu: Record<string, never>;
  argmax: { readonly axis: number; readonly keepdims: boolean };
  dimSize: { readonly axis: number; readonly dtype: DType };
}

export const nnRules: RuleTable<keyof NnAttrs> = {
  softmax: {
    infer: ([x]) => x!,
    // dx = y ⊙ (g − Σ g⊙y)
    vjp: ({ g, out, attrs: { axis } }) => [mul(out, sub(g, sum(mul(g, out), axis, true)))],
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('Softmax', inputs, { axis: { i: attrs.axis } }, out),
  },
  logSoftmax: {
    infer: ([x]) => x!,
    // dx = g − softmax(x) Σ g
    vjp: ({ g, out, attrs: { axis } }) => [sub(g, mul(exp(out), sum(g, axis, true)))],
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('LogSoftmax', inputs, { axis: { i: attrs.axis } }, out),
  },
  layerNorm: {
    // x [..., D], scale [D], bias [D]; normalises the last axis
    infer: ([x, scale, bias]) => {
      const d = x!.shape[x!.shape.length - 1]!;
      for (const [name, p] of [['scale', scale], ['bias', bias]] as const) {
        if (p!.shape.length !== 1 || !dimEquals(p!.shape[0]!, d)) fail(`${name} must have shape [${String(d)}], got ${formatShape(p!.shape)}`);
        if (p!.dtype !== x!.dtype) fail(`${name} dtype ${p!.dtype} differs from input ${x!.dtype}`);
      }
      return x!;
    },
    // x̂ = (x − μ)/σ;  dx = (1/σ)(gγ − mean(gγ) − x̂ mean(gγ ⊙ x̂));  dγ = Σ g⊙x̂;  dβ = Σ g
    // x̂ and 1/σ come from one more LayerNormalization kernel (unit scale, and its InvStdDev
    // output) instead of being recomputed by 2 ReduceMeans and 5 elementwise ops
    vjp: ({ g, inputs: [x, scale], attrs: { eps }, needs }) => {
      const xhat = normalized(x!, eps);
      const rstd = invStdOfNormalized(x!, xhat);
      const gs = mul(g, scale!);
      const dx = needs[0] ? mul(rstd, sub(sub(gs, mean(gs, -1, true)), mul(xhat, mean(mul(gs, xhat), -1, true)))) : null;
      return [dx, needs[1] ? mul(g, xhat) : null, needs[2] ? g : null];
    },
    emit: (ctx, { inputs, out, attrs }) => {
      if (ctx.opset < 17) fail(`layerNorm needs ONNX opset 17 or newer, got ${ctx.opset}`);
      ctx.op('LayerNormalization', inputs, { axis: { i: -1 }, epsilon: { f: attrs.eps } }, out);
    },
  },
  normalized: {
    // x̂ = (x − μ)/√(σ² + ε) over the last axis: layerNorm with unit scale and no bias
    infer: ([x]) => {
      if (typeof x!.shape[x!.shape.length - 1] !== 'number') fail('normalized: the last axis must be static');
      return x!;
    },
    // the layerNorm VJP with γ = 1
    vjp: ({ g, inputs: [x], out }) => {
      const rstd = invStdOfNormalized(x!, out);
      return [mul(rstd, sub(sub(g, mean(g, -1, true)), mul(out, mean(mul(g, out), -1, true))))];
    },
    emit: (ctx, { inputs: [x], out, attrs: { eps }, inTypes }) => {
      if (ctx.opset < 17) fail(`normalized needs ONNX opset 17 or newer, got ${ctx.opset}`);
      const { shape, dtype } = inTypes[0]!;
      const ones = ctx.op('Expand', [ctx.scalar(1, dtype), ctx.int64s([shape[shape.length - 1] as number])]);
      // ONNX types Mean and InvStdDev as float32 (stash_type), so only a float32 x̂ exports them
      const outputs = dtype === 'float32' ? [out, `${out}/mean`, `${out}/inv_std`] : [out];
      ctx.op('LayerNormalization', [x!, ones], { axis: { i: -1 }, epsilon: { f: eps } }, outputs);
    },
  },
  invStdOfNormalized: {
    // 1/√(σ² + ε) [..., 1] of x, read from the InvStdDev output of the `normalized` node x̂ of x
    // (so x̂ must be normalized(x)); x is an input for the gradient
    infer: ([x]) => ({ dtype: x!.dtype, shape: [...x!.shape.slice(0, -1), 1] }),
    // r = (σ² + ε)^(−½):  ∂r/∂x = −r³ (x − μ)/D = −r² x̂ / D
    vjp: ({ g, inputs: [x, xhat], out }) => {
      const d = x!.shape[x!.shape.length - 1] as number;
      return [mul(mul(g, mul(out, out)), mul(xhat!, -1 / d)), null];
    },
    emit: (ctx, { inputs: [x, xhat], out, attrs: { eps }, inTypes }) => {
      const dtype = inTypes[0]!.dtype;
      if (dtype === 'float32') return void ctx.op('Identity', [`${xhat!}/inv_std`], {}, out);
      // other dtypes: the statistics in that dtype, written out
      const centered = ctx.op('Sub', [x!, emitMeanKeepdims(ctx, x!, [-1])]);
      const variance = emitMeanKeepdims(ctx, ctx.op('Mul', [centered, centered]), [-1]);
      ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalar(eps, dtype)])])], {}, out);
    },
  },
  batchNorm: {
    // x [N, C, ...], scale [C], bias [C]; each channel normalised with the batch's own statistics
    // over every axis but 1 (training-mode BatchNorm: the biased variance, as PyTorch normalises)
    infer: ([x, scale, bias]) => {
      if (x!.shape.length < 2) fail(`expected x [N, C, ...], got ${formatShape(x!.shape)}`);
      const c = x!.shape[1]!;
      for (const [name, p] of [['scale', scale], ['bias', bias]] as const) {
        if (p!.shape.length !== 1 || !dimEquals(p!.shape[0]!, c)) fail(`${name} must have shape [${String(c)}], got ${formatShape(p!.shape)}`);
        if (p!.dtype !== x!.dtype) fail(`${name} dtype ${p!.dtype} differs from input ${x!.dtype}`);
      }
      return x!;
    },
    // x̂ = (x − μ) r, r = 1/√(σ² + ε), means over the M values of a channel:
    // dx = γr (g − mean(g) − x̂ mean(g⊙x̂)) = γr g − γr Σg/M − (x − μ) γr³ Σ g⊙(x − μ)/M;  dγ = r Σ g⊙(x − μ);  dβ = Σ g
    vjp: ({ g, inputs: [x, scale], attrs: { eps }, needs }) => {
      const axes = statAxes(x!);
      const { centered, variance } = batchStatistics(x!);
      const rstd = div(1, sqrt(add(variance, eps)));
      const gsum = sum(g, axes, true);
      const gc = sum(mul(g, centered), axes, true);
      // the count from g, not x (the same shape): reading x's shape here would keep x alive for
      // the backward pass beside the centred x̂ the VJP shares with the forward pass
      const count = valuesPerChannel(g);
      let dx: Tensor | null = null;
      if (needs[0]) {
        const k = mul(rstd, channelView(scale!, x!.rank)); // γr [1, C, 1, 1]
        const shift = div(mul(k, gsum), count);
        const slope = div(mul(mul(k, mul(rstd, rstd)), gc), count);
        dx = sub(sub(mul(g, k), shift), mul(centered, slope));
      }
      const c = x!.shape[1]!;
      return [dx, needs[1] ? reshape(mul(gc, rstd), [c]) : null, needs[2] ? reshape(gsum, [c]) : null];
    },
    // the statistics as batchStatistics traces them (ReduceMean, Sub, Mul, ReduceMean), so ORT's
    // common-subexpression pass shares them with the VJP and with a running-statistics update
    emit: (ctx, { inputs: [x, scale, bias], out, attrs: { eps }, inTypes }) => {
      const { rank, dtype } = { rank: inTypes[0]!.shape.length, dtype: inTypes[0]!.dtype };
      const axes = [0, ...Array.from({ length: rank - 2 }, (_, i) => i + 2)];
      const reduceMean = (t: string) => emitMeanKeepdims(ctx, t, axes);
      const centered = ctx.op('Sub', [x!, reduceMean(x!)]);
      const variance = reduceMean(ctx.op('Mul', [centered, centered]));
      const rstd = ctx.op('Div', [ctx.scalar(1, dtype), ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalar(eps, dtype)])])]);
      const view = ctx.int64s([-1, ...new Array<number>(rank - 2).fill(1)]);
      const k = ctx.op('Mul', [rstd, ctx.op('Reshape', [scale!, view])]);
      ctx.op('Add', [ctx.op('Mul', [centered, k]), ctx.op('Reshape', [bias!, view])], {}, out);
    },
  },
  resizeBilinear: {
    // x [N, C, H, W] → [N, C, h, w], torch's F.interpolate(mode='bilinear', antialias=False)
    infer: ([x], { size }) => {
      if (x!.shape.length !== 4) fail(`expected x [N, C, H, W], got ${formatShape(x!.shape)}`);
      if (x!.dtype !== 'float32' && x!.dtype !== 'float64') fail(`expected a float tensor, got ${x!.dtype}`);
      if (typeof x!.shape[2] !== 'number' || typeof x!.shape[3] !== 'number') fail('height and width must be static');
      if (!size.every((d) => Number.isInteger(d) && d >= 1)) fail(`size must be two positive integers, got [${size.join(', ')}]`);
      return { dtype: x!.dtype, shape: [x!.shape[0]!, x!.shape[1]!, size[0], size[1]] };
    },
    // y = A_h x A_wᵀ with the interpolation matrices A, so dx = A_hᵀ g A_w: exact, two matrix products
    vjp: ({ g, inputs: [x], attrs: { size, alignCorners } }) => {
      const [h, w] = [x!.shape[2] as number, x!.shape[3] as number];
      const matrix = (from: number, to: number, transposed: boolean) => {
        const a = interpolationMatrix(from, to, alignCorners);
        const data = transposed ? transposeHost(a, to, from) : a;
        return x!.graph.constant(x!.dtype === 'float64' ? data : Float32Array.from(data), transposed ? [from, to] : [to, from], x!.dtype);
      };
      // an axis whose size is unchanged interpolates to the identity in both modes
      const rows = w === size[1] ? g : matmul(g, matrix(w, size[1], false)); // [N, C, h, W]
      return [h === size[0] ? rows : matmul(matrix(h, size[0], true), rows)]; // [N, C, H, W]
    },
    emit: (ctx, { inputs: [x], out, attrs: { size, alignCorners } }) => {
      if (ctx.opset < 13) fail(`resizeBilinear needs ONNX opset 13 or newer, got ${ctx.opset}`);
      const sizes = ctx.op('Concat', [ctx.op('Shape', [x!], { start: { i: 0 }, end: { i: 2 } }), ctx.int64s(size)], { axis: { i: 0 } });
      ctx.op('Resize', [x!, '', '', sizes], {
        mode: { s: 'linear' },
        coordinate_transformation_mode: { s: alignCorners ? 'align_corners' : 'half_pixel' },
      }, out);
    },
  },
  gelu: {
    infer: ([x]) => {
      if (x!.dtype !== 'float32' && x!.dtype !== 'float64') fail(`expected a float tensor, got ${x!.dtype}`);
      return x!;
    },
    // GELU(x) = xΦ(x);  dx = g (Φ(x) + x φ(x)) = ½ g (1 + erf(t) + √(2/π) x / exp(t²)), t = x/√2,
    // recomputed from x alone so only x is kept for backward. Written for few passes over the
    // (large) activation: 10 elementwise kernels instead of 11 (the ½ g stays a Mul of its own: in
    // a Linear's backward a Reshape sits between it and the MatMul producing g, so ORT does not fold
    // the scale into that MatMul). exp(t²) overflows to ∞ for |x| > 13, where the term is 0.
    vjp: ({ g, inputs: [x] }) => {
      const t = mul(x!, Math.SQRT1_2);
      const twoXPdf = div(mul(x!, Math.sqrt(2 / Math.PI)), exp(mul(t, t)));
      return [mul(mul(g, 0.5), add(add(erf(t), twoXPdf), 1))];
    },
    emit: (ctx, { inputs: [x], out, inTypes, attrs }) => {
      if (ctx.opset >= 20) {
        // (a recomputation is merged with the forward GELU here: the same values, no memory saved)
        ctx.op('Gelu', [x!], { approximate: { s: 'none' } }, out);
        return;
      }
      // The exact pattern ORT fuses into its Gelu/BiasGelu kernels: x · (erf(x / √2) + 1) · 0.5.
      // A recomputation (see geluRecomputed) writes x / √2 as x · (1/√2), so that ORT's common-
      // subexpression pass does not merge it back into the forward GELU (which would keep that
      // output alive again); it shares its Erf with the GELU's VJP instead and runs unfused.
      const dtype = inTypes[0]!.dtype;
      const scaled = attrs.recomputed ? ctx.op('Mul', [x!, ctx.scalar(Math.SQRT1_2, dtype)]) : ctx.op('Div', [x!, ctx.scalar(Math.SQRT2, dtype)]);
      const e = ctx.op('Erf', [scaled]);
      ctx.op('Mul', [ctx.op('Mul', [x!, ctx.op('Add', [e, ctx.scalar(1, dtype)])]), ctx.scalar(0.5, dtype)], {}, out);
    },
  },
  silu: {
    infer: ([x]) => {
      if (x!.dtype !== 'float32' && x!.dtype !== 'float64') fail(`expected a float tensor, got ${x!.dtype}`);
      return x!;
    },
    // SiLU(x) = xσ(x);  dx = g σ(x) (1 + x σ(−x)), from x alone, so σ(x) is not kept for backward
    // (as Mul(x, Sigmoid(x)) from primitives it was: a third of the activations a conv → norm →
    // SiLU stack saves). σ(−x) = 1 − σ(x) is taken as a Sigmoid of −x, so ORT's common-
    // subexpression pass cannot merge it back into the forward Sigmoid, which would keep that
    // output alive again.
    vjp: ({ g, inputs: [x] }) => {
      const sNeg = sigmoid(neg(x!));
      return [mul(g, mul(sub(1, sNeg), add(mul(x!, sNeg), 1)))];
    },
    // ONNX before opset 24 has no SiLU: Mul(x, Sigmoid(x)), the pattern ORT fuses (QuickGelu)
    emit: (ctx, { inputs: [x], out }) => void ctx.op('Mul', [x!, ctx.op('Sigmoid', [x!])], {}, out),
  },
  argmax: {
    infer: ([x], { axis, keepdims }) => ({
      dtype: 'int64',
      shape: keepdims ? x!.shape.map((d, i) => (i === axis ? 1 : d)) : x!.shape.filter((_, i) => i !== axis),
    }),
    vjp: 'nondiff',
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('ArgMax', inputs, { axis: { i: attrs.axis }, keepdims: { i: attrs.keepdims ? 1 : 0 } }, out),
  },
  dimSize: {
    infer: (_, { dtype }) => ({ dtype, shape: [] }),
    vjp: 'nondiff',
    emit: (ctx, { inputs, out, attrs: { axis, dtype } }) => {
      const size = ctx.op('Shape', inputs, { start: { i: axis }, end: { i: axis + 1 } });
      const typed = ctx.op('Cast', [size], { to: { i: onnxDTypeCode[dtype] } });
      ctx.op('Squeeze', [typed, ctx.int64s([0])], {}, out);
    },
  },
};

// ---- batch statistics and interpolation -------------------------------------------------------

const statAxes = (x: Tensor): number[] => [0, ...Array.from({ length: x.rank - 2 }, (_, i) => i + 2)];

/** A per-channel [C] tensor viewed as [C, 1, …] to broadcast over x's axes after the channel axis. */
const channelView = (t: Tensor, rank: number): Tensor => reshape(t, [t.shape[0]!, ...new Array<Dim>(rank - 2).fill(1)]);

/** M, the values a channel's statistics are taken over: N·H·W (a run-time value when N is the batch). */
function valuesPerChannel(x: Tensor): Tensor | number {
  const rest = x.shape.slice(2).reduce<number>((a, d) => a * (d as number), 1);
  const n = x.shape[0]!;
  return typeof n === 'number' ? n * rest : mul(dimSize(x, 0, x.dtype), n.batch * rest);
}

function emitMeanKeepdims(ctx: EmitContext, t: string, axes: number[]): string {
  // as reduce.ts emits `mean`: axes as an input from opset 18, an attribute before
  return ctx.opset >= 18
    ? ctx.op('ReduceMean', [t, ctx.int64s(axes)], { keepdims: { i: 1 } })
    : ctx.op('ReduceMean', [t], { axes: { ints: axes }, keepdims: { i: 1 } });
}

/**
 * The batch statistics of x [N, C, ...] per channel (kept as [1, C, 1, …]): the mean, x − mean and
 * the biased variance, traced as the batchNorm primitive emits them.
 */
export function batchStatistics(x: Tensor): { mean: Tensor; centered: Tensor; variance: Tensor } {
  const axes = statAxes(x);
  const mu = mean(x, axes, true);
  const centered = sub(x, mu);
  return { mean: mu, centered, variance: mean(mul(centered, centered), axes, true) };
}

/**
 * Row i holds the weights of output i over the input positions, as PyTorch's bilinear upsampling
 * computes them: source coordinate (i + ½)·in/out − ½ clamped at 0 (align_corners false) or
 * i·(in − 1)/(out − 1) (true); the two nearest inputs share the weight, the last input takes it all.
 */
export function interpolationMatrix(inSize: number, outSize: number, alignCorners: boolean): Float64Array {
  const a = new Float64Array(outSize * inSize);
  const scale = alignCorners ? (outSize > 1 ? (inSize - 1) / (outSize - 1) : 0) : inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const src = alignCorners ? i * scale : Math.max((i + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const lambda = src - i0;
    a[i * inSize + i0] += 1 - lambda;
    a[i * inSize + i1] += lambda;
  }
  return a;
}

function transposeHost(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}

// ---- ops ------------------------------------------------------------------------------------

export const softmax = (x: Tensor, axis = -1): Tensor => apply('softmax', [x], { axis: normAxis(axis, x.rank, 'softmax') });
export const logSoftmax = (x: Tensor, axis = -1): Tensor => apply('logSoftmax', [x], { axis: normAxis(axis, x.rank, 'logSoftmax') });

/** LayerNorm over the last axis (ONNX LayerNormalization). */
export const layerNorm = (x: Tensor, scale: Tensor, bias: Tensor, eps = 1e-5): Tensor => apply('layerNorm', [x, scale, bias], { eps });

/** x normalised over its last axis, (x − μ)/√(σ² + ε): layerNorm without scale and bias. */
export const normalized = (x: Tensor, eps = 1e-5): Tensor => apply('normalized', [x], { eps });

/** 1/√(σ² + ε) [..., 1] of x over its last axis; `xhat` must be `normalized(x)`, whose kernel computed it. */
export function invStdOfNormalized(x: Tensor, xhat: Tensor): Tensor {
  const n = xhat.node;
  if (n.kind !== 'op' || n.prim !== 'normalized' || n.inputs[0] !== x.node.id) fail('invStdOfNormalized: the second input must be normalized(x) of the first');
  return apply('invStdOfNormalized', [x, xhat], { eps: (n as { attrs: { eps: number } }).attrs.eps });
}

/** Training-mode BatchNorm of x [N, C, ...] with the batch's statistics (see `BatchNorm2d` for the running ones). */
export const batchNorm = (x: Tensor, scale: Tensor, bias: Tensor, eps = 1e-5): Tensor => apply('batchNorm', [x, scale, bias], { eps });

/** Bilinear resize of x [N, C, H, W] to `size` [h, w], torch's F.interpolate(mode='bilinear', align_corners). */
export const resizeBilinear = (x: Tensor, size: Pair, alignCorners = false): Tensor => apply('resizeBilinear', [x], { size, alignCorners });

/** Exact (erf) GELU, x·Φ(x). */
export const gelu = (x: Tensor): Tensor => apply('gelu', [x], {});

/**
 * GELU whose output grad() does not save: the VJP of the layer after it (an MLP's second Linear)
 * reads `geluRecomputed` of its input instead, so only the input stays saved between forward and
 * backward. Worth measuring per model, as it trades saved memory for transient memory in the
 * backward pass (BENCHMARKS.md, "Training peak memory of CvT": one model gains 0.6 GB of peak RSS,
 * another loses 0.1 GB, its backward peak grown by the recomputation's temporaries).
 */
export const geluRecomputedInBackward = (x: Tensor): Tensor => apply('gelu', [x], { recomputeInBackward: true });

/** A GELU computed again from its input, for the backward pass (see geluRecomputedInBackward); the same values. */
export const geluRecomputed = (x: Tensor): Tensor => apply('gelu', [x], { recomputed: true });

/** SiLU (swish), x·σ(x) (Elfwing et al. 2017; Ramachandran et al. 2017); its VJP keeps only x. */
export const silu = (x: Tensor): Tensor => apply('silu', [x], {});


export const argmax = (x: Tensor, axis = -1, keepdims = false): Tensor =>
  apply('argmax', [x], { axis: normAxis(axis, x.rank, 'argmax'), keepdims });

/** The run-time size of one axis as a rank-0 tensor (e.g. the batch size). */
export const dimSize = (x: Tensor, axis: number, dtype: DType = 'float32'): Tensor =>
  apply('dimSize', [x], { axis: normAxis(axis, x.rank, 'dimSize'), dtype });
