/** Convolution primitives (ONNX Conv, ConvTranspose, AveragePool) and their gradients. */
import type { Dim } from '../ir/shape.js';
import { dimEquals, formatShape } from '../ir/shape.js';
import type { Tensor } from '../ir/tensor.js';
import type { EmitArgs, EmitContext, RuleTable } from './prim.js';
import { apply, fail } from './apply.js';
import { sum } from './reduce.js';
import { concat, gather, pad, reshape, slice, transpose } from './movement.js';
import { matmul } from './linalg.js';

type Pair = readonly [number, number];
export interface ConvAttrs { readonly stride: Pair; readonly padding: Pair; readonly dilation: Pair; readonly groups: number }
export interface ConvTransposeAttrs extends ConvAttrs { readonly outputPadding: Pair }
/** The weight gradient of a convolution with one input channel per group (groups = channels). */
export interface DepthwiseWeightGradAttrs { readonly kernel: Pair; readonly stride: Pair; readonly padding: Pair }

export interface ConvFamilyAttrs {
  conv2d: ConvAttrs;
  convTranspose2d: ConvTransposeAttrs;
  depthwiseWeightGrad: DepthwiseWeightGradAttrs;
  avgPool2d: { readonly kernel: Pair; readonly stride: Pair; readonly padding: Pair };
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

export const convRules: RuleTable<keyof ConvFamilyAttrs> = {
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
  depthwiseWeightGrad: {
    // g [N, O, Ho, Wo] (the conv's output cotangent), x [N, C, H, W] → dw [O, 1, kh, kw], O = C·multiplier
    infer: ([g, x], { kernel, stride, padding }) => {
      if (g!.shape.length !== 4 || x!.shape.length !== 4) fail('expected g [N, O, Ho, Wo] and x [N, C, H, W]');
      if (g!.dtype !== x!.dtype) fail(`dtype mismatch: ${g!.dtype} vs ${x!.dtype}`);
      const [c, h, w] = x!.shape.slice(1).map((d, i) => staticOf(d, ['channels', 'height', 'width'][i]!));
      const [o, ho, wo] = g!.shape.slice(1).map((d, i) => staticOf(d, ['output channels', 'output height', 'output width'][i]!));
      const a = { stride, padding, dilation: [1, 1] as Pair, groups: c! };
      if (!dimEquals(g!.shape[0]!, x!.shape[0]!) || o! % c! !== 0 || ho !== convOut(h!, kernel[0], a, 0) || wo !== convOut(w!, kernel[1], a, 1)) {
        fail(`g ${formatShape(g!.shape)} is not the output of a ${kernel.join('×')} depthwise convolution of ${formatShape(x!.shape)}`);
      }
      return { dtype: x!.dtype, shape: [o!, 1, kernel[0], kernel[1]] };
    },
    // dw is bilinear in (g, x): ⟨w̄, dw(g, x)⟩ = ⟨conv(x, w̄), g⟩, so ḡ = conv(x, w̄) and x̄ = convᵀ(g, w̄)
    vjp: ({ g: wbar, inputs: [g, x], attrs: { stride, padding }, needs }) => {
      const conv: ConvAttrs = { stride, padding, dilation: [1, 1], groups: x!.shape[1] as number };
      return [needs[0] ? conv2d(x!, wbar, undefined, conv) : null, needs[1] ? convInputGrad(g!, x!, wbar, conv) : null];
    },
    emit: emitDepthwiseWeightGrad,
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
  return (attrs.groups > 1 ? groupedInputGrad(g, w, kernel, attrs) : undefined)
    ?? convTranspose2d(g, w, { ...attrs, outputPadding: fitOutputPadding(x, g, kernel, attrs) });
}

/**
 * dx of a stride-1 grouped convolution as a convolution: the cotangent convolved with the kernel
 * rotated by 180° and with in/out channels swapped within each group, padded by d(k−1)−p. ORT runs
 * a grouped ConvTranspose as one small GEMM and col2im per image and group: for a 3×3 depthwise
 * convolution of [32, 96, 28, 28], 11 ms of kernel time against this Conv's 2.8 ms (2 threads).
 * With stride 2, ConvTranspose touches a quarter of the positions a convolution of the
 * zero-upsampled cotangent would, and wins.
 * Undefined when this does not apply.
 */
function groupedInputGrad(g: Tensor, w: Tensor, [kh, kw]: Pair, { stride, padding, dilation, groups }: ConvAttrs): Tensor | undefined {
  const pads: Pair = [dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[1]];
  if (stride.some((s) => s !== 1) || pads.some((p) => p < 0)) return undefined;
  const [o, ci] = w.shape as [number, number];
  const co = o / groups;
  const reversed = w.graph.constant(BigInt64Array.from({ length: kh * kw }, (_, i) => BigInt(kh * kw - 1 - i)), [kh * kw], 'int64');
  const grouped = transpose(reshape(w, [groups, co, ci, kh * kw]), [0, 2, 1, 3]); // [G, Ci, Co, kh·kw]
  const rotated = reshape(gather(grouped, reversed, 3), [groups * ci, co, kh, kw]);
  return conv2d(g, rotated, undefined, { stride: [1, 1], padding: pads, dilation, groups });
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
  if (w.shape[1] === 1 && dilation.every((v) => v === 1)) return depthwiseWeightGrad(g, x, [w.shape[2] as number, w.shape[3] as number], stride, padding);
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

/**
 * The weight gradient of a convolution with one input channel per group (depthwise),
 * dw[o, p, q] = Σ_{n,y,x} g[n, o, y, x] · xpad[n, c(o), s·y + p, s·x + q], as kw convolutions that
 * MLAS runs as dot products, without im2col. Each channel's images are interleaved column by
 * column and padded above and below, X [C, Hp, W·N]; the cotangent (zero-upsampled by the stride)
 * in the same layout, shifted by q minus the padding, is a kernel F_q [O, Hp − kh + 1, W·N] as wide as X.
 * A kernel spanning the input's whole width is MLAS's direct-GEMM case, and Conv(X, F_q) gives
 * dw[:, :, :, q] for every p at once. The batch-as-channels convolution of convWeightGrad expands
 * a kh·kw × N·Ho·Wo column matrix per channel instead, element by element: 18 ms of kernel time
 * against 5.4 ms for a 3×3 of [32, 96, 28, 28] (33 against 28 ms with stride 2 on 56×56, where
 * the zero-upsampled kernels are mostly zeros). Batch-last layouts make each Transpose a matrix
 * transpose and each Pad a copy of whole rows.
 */
function emitDepthwiseWeightGrad(ctx: EmitContext, args: EmitArgs<DepthwiseWeightGradAttrs>): void {
  const { inputs: [g, x], out, attrs: { kernel: [kh, kw], stride: [s0, s1], padding: [p0, p1] }, inTypes } = args;
  const dtype = inTypes[0]!.dtype;
  const [, o, ho, wo] = inTypes[0]!.shape as [Dim, number, number, number];
  const [, c, h, w] = inTypes[1]!.shape as [Dim, number, number, number];
  const hp = h + 2 * p0;
  const zero = ctx.scalar(0, dtype);
  const padOp = (t: string, pads: number[]) => (pads.every((v) => v === 0) ? t : ctx.op('Pad', [t, ctx.int64s(pads), zero], { mode: { s: 'constant' } }));
  const batchLast = (t: string) => ctx.op('Transpose', [t], { perm: { ints: [1, 2, 3, 0] } });
  // the images interleaved column by column, padded above and below: [C, Hp, W·N]
  const images = padOp(batchLast(x!), [0, p0, 0, 0, 0, p0, 0, 0]); // [C, Hp, W, N]
  const side = ctx.op('Reshape', [images, ctx.int64s([1, c, hp, -1])]); // [1, C, Hp, W·N]
  let cot = batchLast(g!); // [O, Ho, Wo, N]
  let [rows, cols] = [ho, wo];
  if (s0 > 1 || s1 > 1) {
    // s−1 zeros after each row and column
    const spread = padOp(ctx.op('Reshape', [cot, ctx.int64s([o, ho, 1, wo, 1, -1])]), [0, 0, 0, 0, 0, 0, 0, 0, s0 - 1, 0, s1 - 1, 0]);
    [rows, cols] = [ho * s0, wo * s1];
    cot = ctx.op('Reshape', [spread, ctx.int64s([o, rows, cols, -1])]);
  }
  const kr = hp - kh + 1; // kernel rows: Hp − kr + 1 = kh output rows
  const taps: string[] = [];
  for (let q = 0; q < kw; q++) {
    // cotangent column u meets image column u + q − p1; columns outside the image meet padding (zeros) and are cut
    const shift = q - p1;
    const frame = padOp(cot, [0, 0, shift, 0, 0, kr - rows, w - cols - shift, 0]); // [O, kr, W, N]
    const kernel = ctx.op('Reshape', [frame, ctx.int64s([o, 1, kr, -1])]);
    taps.push(ctx.op('Conv', [side, kernel], { group: { i: c } })); // [1, O, kh, 1]
  }
  ctx.op('Reshape', [kw > 1 ? ctx.op('Concat', taps, { axis: { i: 3 } }) : taps[0]!, ctx.int64s([o, 1, kh, kw])], {}, out);
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

/** dw of a depthwise convolution (one input channel per group) of x with output cotangent g. */
export function depthwiseWeightGrad(g: Tensor, x: Tensor, kernel: Pair, stride: number | Pair = 1, padding: number | Pair = 0): Tensor {
  return apply('depthwiseWeightGrad', [g, x], { kernel, stride: pair(stride, 1), padding: pair(padding, 0) });
}

/** Average pooling with zero padding counted in the average (PyTorch's count_include_pad=True). */
export function avgPool2d(x: Tensor, kernel: number | Pair, stride?: number | Pair, padding: number | Pair = 0): Tensor {
  const k = pair(kernel, 1);
  return apply('avgPool2d', [x], { kernel: k, stride: stride === undefined ? k : pair(stride, 1), padding: pair(padding, 0) });
}
