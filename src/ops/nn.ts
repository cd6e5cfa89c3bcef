/** Neural-network primitives that ONNX runs as fused kernels. */
import { onnxDTypeCode, type DType } from '../ir/dtype.js';
import { dimEquals, formatShape, normAxis, type Dim } from '../ir/shape.js';
import type { Tensor } from '../ir/tensor.js';
import type { RuleTable } from './prim.js';
import { apply, fail } from './apply.js';
import { add, div, erf, exp, mul, sqrt, sub } from './elementwise.js';
import { mean, sum } from './reduce.js';
import { concat, pad, reshape, slice, transpose } from './movement.js';
import { matmul } from './linalg.js';

type Pair = readonly [number, number];
export interface ConvAttrs { readonly stride: Pair; readonly padding: Pair; readonly dilation: Pair; readonly groups: number }
export interface ConvTransposeAttrs extends ConvAttrs { readonly outputPadding: Pair }

export interface NnAttrs {
  conv2d: ConvAttrs;
  convTranspose2d: ConvTransposeAttrs;
  avgPool2d: { readonly kernel: Pair; readonly stride: Pair; readonly padding: Pair };
  softmax: { readonly axis: number };
  logSoftmax: { readonly axis: number };
  layerNorm: { readonly eps: number };
  gelu: Record<string, never>;
  argmax: { readonly axis: number; readonly keepdims: boolean };
  dimSize: { readonly axis: number; readonly dtype: DType };
}

const staticOf = (d: Dim, what: string): number => (typeof d === 'number' ? d : fail(`${what} must be static`));
const mulDim = (d: Dim, k: number): Dim => (typeof d === 'number' ? d * k : { batch: d.batch * k });

function convOut(size: number, k: number, { stride, padding, dilation }: ConvAttrs, i: 0 | 1): number {
  return Math.floor((size + 2 * padding[i] - dilation[i] * (k - 1) - 1) / stride[i]) + 1;
}
function convTransposeOut(size: number, k: number, a: ConvTransposeAttrs, i: 0 | 1): number {
  return a.stride[i] * (size - 1) + a.outputPadding[i] + a.dilation[i] * (k - 1) + 1 - 2 * a.padding[i];
}

const convOnnxAttrs = ({ stride, padding, dilation, groups }: ConvAttrs) => ({
  strides: { ints: stride },
  pads: { ints: [padding[0], padding[1], padding[0], padding[1]] },
  dilations: { ints: dilation },
  group: { i: groups },
});

export const nnRules: RuleTable<keyof NnAttrs> = {
  conv2d: {
    // x [N, C, H, W], w [O, C/groups, kh, kw], optional bias [O]
    infer: ([x, w, b], attrs) => {
      if (x!.shape.length !== 4 || w!.shape.length !== 4) fail('expected x [N, C, H, W] and weight [O, C/groups, kh, kw]');
      if (x!.dtype !== w!.dtype) fail(`dtype mismatch: ${x!.dtype} vs ${w!.dtype}`);
      const [n, c, h, wd] = x!.shape as [Dim, Dim, Dim, Dim];
      const [o, ci, kh, kw] = w!.shape as [Dim, Dim, Dim, Dim];
      if (!dimEquals(mulDim(ci, attrs.groups), c)) fail(`input has ${String(c)} channels but weight expects ${String(ci)} x ${attrs.groups} groups`);
      if (b && !(b.shape.length === 1 && dimEquals(b.shape[0]!, o))) fail(`bias must have shape [${String(o)}]`);
      const oh = convOut(staticOf(h, 'height'), staticOf(kh, 'kernel height'), attrs, 0);
      const ow = convOut(staticOf(wd, 'width'), staticOf(kw, 'kernel width'), attrs, 1);
      if (oh < 1 || ow < 1) fail('the kernel is larger than the padded input');
      return { dtype: x!.dtype, shape: [n, o, oh, ow] };
    },
    vjp: ({ g, inputs: [x, w, b], attrs, needs }) => [
      needs[0] ? convInputGrad(g, x!, w!, attrs) : null,
      needs[1] ? convWeightGrad(g, x!, w!, attrs) : null,
      b && needs[2] ? sum(g, [0, 2, 3]) : null,
    ],
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('Conv', inputs, convOnnxAttrs(attrs), out),
  },
  convTranspose2d: {
    // x [N, C, H, W], w [C, O/groups, kh, kw]
    infer: ([x, w], attrs) => {
      if (x!.shape.length !== 4 || w!.shape.length !== 4) fail('expected x [N, C, H, W] and weight [C, O/groups, kh, kw]');
      const [n, c, h, wd] = x!.shape as [Dim, Dim, Dim, Dim];
      const [ci, o, kh, kw] = w!.shape as [Dim, Dim, Dim, Dim];
      if (!dimEquals(c, ci)) fail(`input has ${String(c)} channels, weight ${String(ci)}`);
      const oh = convTransposeOut(staticOf(h, 'height'), staticOf(kh, 'kernel height'), attrs, 0);
      const ow = convTransposeOut(staticOf(wd, 'width'), staticOf(kw, 'kernel width'), attrs, 1);
      return { dtype: x!.dtype, shape: [n, mulDim(o, attrs.groups), oh, ow] };
    },
    // the adjoint of a transposed convolution is the convolution
    vjp: ({ g, inputs: [, w], attrs, needs }) => {
      if (needs[1]) fail('convTranspose2d: the gradient with respect to the weight is not supported');
      const { outputPadding: _, ...conv } = attrs;
      return [needs[0] ? conv2d(g, w!, undefined, conv) : null, null];
    },
    emit: (ctx, { inputs, out, attrs }) =>
      void ctx.op('ConvTranspose', inputs, { ...convOnnxAttrs(attrs), output_padding: { ints: attrs.outputPadding } }, out),
  },
  avgPool2d: {
    infer: ([x], { kernel, stride, padding }) => {
      if (x!.shape.length !== 4) fail('expected x [N, C, H, W]');
      const a = { stride, padding, dilation: [1, 1] as Pair, groups: 1 };
      const [n, c, h, w] = x!.shape as [Dim, Dim, Dim, Dim];
      return { dtype: x!.dtype, shape: [n, c, convOut(staticOf(h, 'height'), kernel[0], a, 0), convOut(staticOf(w, 'width'), kernel[1], a, 1)] };
    },
    // every window spreads its cotangent evenly: a depthwise transposed convolution with 1/(kh·kw)
    vjp: ({ g, inputs: [x], attrs: { kernel, stride, padding } }) => {
      const c = staticOf(x!.shape[1]!, 'channels');
      const k = kernel[0] * kernel[1];
      const data = x!.dtype === 'float64' ? new Float64Array(c * k).fill(1 / k) : new Float32Array(c * k).fill(1 / k);
      const w = x!.graph.constant(data, [c, 1, kernel[0], kernel[1]], x!.dtype);
      const conv = { stride, padding, dilation: [1, 1] as Pair, groups: c };
      return [convTranspose2d(g, w, { ...conv, outputPadding: fitOutputPadding(x!, g, kernel, conv) })];
    },
    emit: (ctx, { inputs, out, attrs: { kernel, stride, padding } }) => void ctx.op('AveragePool', inputs, {
      kernel_shape: { ints: kernel }, strides: { ints: stride },
      pads: { ints: [padding[0], padding[1], padding[0], padding[1]] }, count_include_pad: { i: 1 },
    }, out),
  },
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
    vjp: ({ g, inputs: [x, scale], attrs: { eps }, needs }) => {
      const centered = sub(x!, mean(x!, -1, true));
      const rstd = div(1, sqrt(add(mean(mul(centered, centered), -1, true), eps)));
      const xhat = mul(centered, rstd);
      const gs = mul(g, scale!);
      const dx = needs[0] ? mul(rstd, sub(sub(gs, mean(gs, -1, true)), mul(xhat, mean(mul(gs, xhat), -1, true)))) : null;
      return [dx, needs[1] ? mul(g, xhat) : null, needs[2] ? g : null];
    },
    emit: (ctx, { inputs, out, attrs }) => {
      if (ctx.opset < 17) fail(`layerNorm needs ONNX opset 17 or newer, got ${ctx.opset}`);
      ctx.op('LayerNormalization', inputs, { axis: { i: -1 }, epsilon: { f: attrs.eps } }, out);
    },
  },
  gelu: {
    infer: ([x]) => {
      if (x!.dtype !== 'float32' && x!.dtype !== 'float64') fail(`expected a float tensor, got ${x!.dtype}`);
      return x!;
    },
    // GELU(x) = xΦ(x);  dx = g (Φ(x) + x φ(x)), recomputed from x alone so only x is kept for backward
    vjp: ({ g, inputs: [x] }) => {
      const cdf = mul(add(erf(mul(x!, Math.SQRT1_2)), 1), 0.5);
      const pdf = mul(exp(mul(mul(x!, x!), -0.5)), 1 / Math.sqrt(2 * Math.PI));
      return [mul(g, add(cdf, mul(x!, pdf)))];
    },
    emit: (ctx, { inputs: [x], out, inTypes }) => {
      if (ctx.opset >= 20) {
        ctx.op('Gelu', [x!], { approximate: { s: 'none' } }, out);
        return;
      }
      // The exact pattern ORT fuses into its Gelu/BiasGelu kernels: x · (erf(x / √2) + 1) · 0.5
      const dtype = inTypes[0]!.dtype;
      const e = ctx.op('Erf', [ctx.op('Div', [x!, ctx.scalar(Math.SQRT2, dtype)])]);
      ctx.op('Mul', [ctx.op('Mul', [x!, ctx.op('Add', [e, ctx.scalar(1, dtype)])]), ctx.scalar(0.5, dtype)], {}, out);
    },
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

// ---- convolution gradients -----------------------------------------------------------------

function fitOutputPadding(x: Tensor, g: Tensor, kernel: Pair, a: ConvAttrs): Pair {
  const fit = (i: 0 | 1) => {
    const size = x.shape[2 + i] as number;
    const full = a.stride[i] * ((g.shape[2 + i] as number) - 1) + a.dilation[i] * (kernel[i] - 1) + 1 - 2 * a.padding[i];
    return size - full;
  };
  return [fit(0), fit(1)];
}

/** dx: the transposed convolution of the cotangent with the same weight. */
function convInputGrad(g: Tensor, x: Tensor, w: Tensor, attrs: ConvAttrs): Tensor {
  const kernel: Pair = [w.shape[2] as number, w.shape[3] as number];
  return convTranspose2d(g, w, { ...attrs, outputPadding: fitOutputPadding(x, g, kernel, attrs) });
}

/**
 * dw[o, i, p, q] = Σ_{n,y,x} g[n, o, y, x] · xpad[n, i, y·s + p·d, x·s + q·d]: itself a convolution
 * in which the image channels play the batch, the batch plays the channels, and stride and
 * dilation swap roles.
 */
function convWeightGrad(g: Tensor, x: Tensor, w: Tensor, { stride, padding, dilation, groups }: ConvAttrs): Tensor {
  const [, c, h, wd] = x.shape;
  const pointwise = w.shape[2] === 1 && w.shape[3] === 1 && groups === 1 && [...stride, ...dilation].every((v) => v === 1) && padding.every((v) => v === 0);
  if (pointwise) {
    // a 1×1 convolution is a matrix product per image: dw = Σ_n g_n x_nᵀ (the convolution form
    // below, with the batch as channels, was among the slowest nodes of a conv-stem ViT step)
    const hw = (h as number) * (wd as number);
    const perImage = matmul(reshape(g, [g.shape[0]!, g.shape[1]!, hw]), transpose(reshape(x, [x.shape[0]!, c!, hw]), [0, 2, 1])); // [N, Co, Ci]
    return reshape(sum(perImage, [0]), [w.shape[0]!, c!, 1, 1]);
  }
  if (groups === 1 && dilation.every((v) => v === 1)) return convWeightGradIm2col(g, x, w, stride, padding);
  const ci = (c as number) / groups;
  const [kh, kw] = [w.shape[2] as number, w.shape[3] as number];
  const xs = reshape(x, [x.shape[0]!, groups, ci, h!, wd!]); // [N, G, Ci, H, W]
  const xt = reshape(transpose(xs, [2, 1, 0, 3, 4]), [ci, -1, h!, wd!]); // [Ci, G·N, H, W]
  const gt = transpose(g, [1, 0, 2, 3]); // [G·Co, N, Ho, Wo]
  const full = conv2d(xt, gt, undefined, { stride: dilation, padding, dilation: stride, groups }); // [Ci, G·Co, kh', kw']
  return transpose(slice(full, [2, 3], [0, 0], [kh, kw]), [1, 0, 2, 3]); // [G·Co, Ci, kh, kw]
}

/**
 * dw as one matrix product over every image and output pixel: dw[o, (i, j, c)] = Σ_{n,p} g[n, o, p]
 * · x̃[n, p, (i, j, c)], where x̃ gathers each output pixel's k×k window (im2col, built from k²
 * slices of the padded input in NHWC order). The convolution form above, with the batch as
 * channels, runs one small product per input channel; at 128 images it was 3–5× slower than this
 * (27–50 ms per 3×3 conv of a conv-stem ViT step).
 */
function convWeightGradIm2col(g: Tensor, x: Tensor, w: Tensor, stride: Pair, padding: Pair): Tensor {
  const [o, c, kh, kw] = w.shape as [number, number, number, number];
  const [ho, wo] = [g.shape[2] as number, g.shape[3] as number];
  const [h, wd] = [x.shape[2] as number, x.shape[3] as number];
  // the slices below take s·ho rows from offset i < k: pad the far edge so the last one fits
  const extraH = Math.max(0, kh - 1 + stride[0] * ho - (h + 2 * padding[0]));
  const extraW = Math.max(0, kw - 1 + stride[1] * wo - (wd + 2 * padding[1]));
  const nhwc = pad(transpose(x, [0, 2, 3, 1]), [0, padding[0], padding[1], 0, 0, padding[0] + extraH, padding[1] + extraW, 0]); // [N, Hp, Wp, C]
  // rows i, i+s, …, i+s(count−1) along `axis`: a step-1 slice of s·count rows, regrouped by s, keeping the first of each group
  const strided = (t: Tensor, axis: 1 | 2, start: number, count: number, s: number): Tensor => {
    const rows = slice(t, [axis], [start], [start + s * count]);
    if (s === 1) return rows;
    const grouped = [...rows.shape];
    grouped.splice(axis, 1, count, s);
    const firsts = [...rows.shape];
    firsts[axis] = count;
    return reshape(slice(reshape(rows, grouped), [axis + 1], [0], [1]), firsts);
  };
  const windows: Tensor[] = [];
  for (let i = 0; i < kh; i++) {
    const rows = strided(nhwc, 1, i, ho, stride[0]);
    for (let j = 0; j < kw; j++) windows.push(strided(rows, 2, j, wo, stride[1])); // [N, Ho, Wo, C]
  }
  const cols = reshape(concat(windows, 3), [-1, kh * kw * c]); // [N·Ho·Wo, kh·kw·C]
  const gt = reshape(transpose(reshape(g, [g.shape[0]!, o, ho * wo]), [1, 0, 2]), [o, -1]); // [O, N·Ho·Wo]
  const dw = matmul(gt, cols); // [O, kh·kw·C]
  return transpose(reshape(dw, [o, kh, kw, c]), [0, 3, 1, 2]);
}

// ---- ops ------------------------------------------------------------------------------------

export interface Conv2dOptions { stride?: number | Pair; padding?: number | Pair; dilation?: number | Pair; groups?: number }
const pair = (v: number | Pair | undefined, dflt: number): Pair => (v === undefined ? [dflt, dflt] : typeof v === 'number' ? [v, v] : v);

/** 2-D convolution, NCHW, PyTorch semantics (symmetric zero padding). */
export function conv2d(x: Tensor, w: Tensor, bias?: Tensor, opts: Conv2dOptions = {}): Tensor {
  const attrs: ConvAttrs = { stride: pair(opts.stride, 1), padding: pair(opts.padding, 0), dilation: pair(opts.dilation, 1), groups: opts.groups ?? 1 };
  return apply('conv2d', bias ? [x, w, bias] : [x, w], attrs);
}

export function convTranspose2d(x: Tensor, w: Tensor, attrs: ConvTransposeAttrs): Tensor {
  return apply('convTranspose2d', [x, w], attrs);
}

/** Average pooling with zero padding counted in the average (PyTorch's count_include_pad=True). */
export function avgPool2d(x: Tensor, kernel: number | Pair, stride?: number | Pair, padding: number | Pair = 0): Tensor {
  const k = pair(kernel, 1);
  return apply('avgPool2d', [x], { kernel: k, stride: stride === undefined ? k : pair(stride, 1), padding: pair(padding, 0) });
}

export const softmax = (x: Tensor, axis = -1): Tensor => apply('softmax', [x], { axis: normAxis(axis, x.rank, 'softmax') });
export const logSoftmax = (x: Tensor, axis = -1): Tensor => apply('logSoftmax', [x], { axis: normAxis(axis, x.rank, 'logSoftmax') });

/** LayerNorm over the last axis (ONNX LayerNormalization). */
export const layerNorm = (x: Tensor, scale: Tensor, bias: Tensor, eps = 1e-5): Tensor => apply('layerNorm', [x, scale, bias], { eps });

/** Exact (erf) GELU, x·Φ(x). */
export const gelu = (x: Tensor): Tensor => apply('gelu', [x], {});

export const argmax = (x: Tensor, axis = -1, keepdims = false): Tensor =>
  apply('argmax', [x], { axis: normAxis(axis, x.rank, 'argmax'), keepdims });

/** The run-time size of one axis as a rank-0 tensor (e.g. the batch size). */
export const dimSize = (x: Tensor, axis: number, dtype: DType = 'float32'): Tensor =>
  apply('dimSize', [x], { axis: normAxis(axis, x.rank, 'dimSize'), dtype });
