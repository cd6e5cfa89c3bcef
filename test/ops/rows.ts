/**
 * One row per differentiable primitive (and a few composites): a small function over random
 * inputs. Shared by the finite-difference check and the onnx.checker test.
 */
import * as ops from '../../src/ops/index.js';
import { trace, type InputSpec, type TracedFunction } from '../../src/runtime/compile.js';
import { grad } from '../../src/autodiff/grad.js';
import type { Tensor } from '../../src/ir/tensor.js';
import type { DType } from '../../src/ir/dtype.js';
import { BATCH } from '../../src/ir/shape.js';
import { normal, rng, size } from '../helpers/random.js';

export type Init = 'normal' | 'positive' | 'away' | 'indices' | 'bool';
export interface In { shape: number[]; init?: Init; batch?: boolean }
export interface Row { name: string; prim: string; ins: In[]; f: (...xs: Tensor[]) => Tensor; f32?: boolean; indexMax?: number; h?: number; tol?: number }

export const rows: Row[] = [
  { name: 'add broadcast', prim: 'add', ins: [{ shape: [2, 3, 4] }, { shape: [3, 1] }], f: ops.add },
  { name: 'sub broadcast', prim: 'sub', ins: [{ shape: [4] }, { shape: [2, 3, 4] }], f: ops.sub },
  { name: 'mul broadcast', prim: 'mul', ins: [{ shape: [2, 3, 4] }, { shape: [2, 1, 4] }], f: ops.mul },
  { name: 'div', prim: 'div', ins: [{ shape: [2, 3] }, { shape: [3], init: 'away' }], f: ops.div },
  { name: 'pow', prim: 'pow', ins: [{ shape: [2, 3], init: 'positive' }, { shape: [2, 3] }], f: ops.pow },
  { name: 'maximum', prim: 'maximum', ins: [{ shape: [3, 4] }, { shape: [4] }], f: ops.maximum },
  { name: 'minimum', prim: 'minimum', ins: [{ shape: [3, 4] }, { shape: [3, 4] }], f: ops.minimum },
  { name: 'neg', prim: 'neg', ins: [{ shape: [5] }], f: ops.neg },
  { name: 'exp', prim: 'exp', ins: [{ shape: [2, 5] }], f: ops.exp },
  { name: 'log', prim: 'log', ins: [{ shape: [2, 5], init: 'positive' }], f: ops.log },
  { name: 'sqrt', prim: 'sqrt', ins: [{ shape: [2, 5], init: 'positive' }], f: ops.sqrt },
  { name: 'tanh', prim: 'tanh', ins: [{ shape: [2, 5] }], f: ops.tanh },
  { name: 'erf', prim: 'erf', ins: [{ shape: [2, 5] }], f: ops.erf, f32: true },
  { name: 'abs', prim: 'abs', ins: [{ shape: [2, 5], init: 'away' }], f: ops.abs },
  { name: 'sigmoid', prim: 'sigmoid', ins: [{ shape: [2, 5] }], f: ops.sigmoid },
  { name: 'where', prim: 'where', ins: [{ shape: [3, 4], init: 'bool' }, { shape: [2, 3, 4] }, { shape: [4] }], f: (c, a, b) => ops.where(c!, a!, b!) },
  { name: 'cast f64→f32→f64', prim: 'cast', ins: [{ shape: [3, 4] }], f: (x) => ops.cast(ops.mul(ops.cast(x!, 'float32'), 3), x!.dtype), h: 1e-2, tol: 1e-3 },
  { name: 'sum axes', prim: 'sum', ins: [{ shape: [2, 3, 4] }], f: (x) => ops.sum(x!, [0, 2]) },
  { name: 'mean over batch', prim: 'mean', ins: [{ shape: [3, 4], batch: true }], f: (x) => ops.mean(x!, 0, true) },
  { name: 'max', prim: 'max', ins: [{ shape: [3, 5] }], f: (x) => ops.max(x!, -1) },
  { name: 'reshape merge batch', prim: 'reshape', ins: [{ shape: [2, 3, 4], batch: true }], f: (x) => ops.mul(ops.reshape(x!, [-1, 4]), ops.reshape(x!, [-1, 4])) },
  { name: 'transpose', prim: 'transpose', ins: [{ shape: [2, 3, 4] }], f: (x) => ops.transpose(x!, [2, 0, 1]) },
  { name: 'expand', prim: 'expand', ins: [{ shape: [3, 1] }], f: (x) => ops.expand(x!, [2, 3, 4]) },
  // a sum over leading axes that start with a batch multiple is emitted in two stages (reduce.ts)
  { name: 'bias over a folded batch ([5·B, 3] + [3])', prim: 'add', ins: [{ shape: [2, 5, 3], batch: true }, { shape: [3] }], f: (x, b) => ops.add(ops.reshape(x!, [-1, 3]), b!) },
  { name: 'bias over batch and tokens ([B, 5, 3] + [1, 3])', prim: 'add', ins: [{ shape: [2, 5, 3], batch: true }, { shape: [1, 3] }], f: ops.add },
  { name: 'expand to batch', prim: 'expand', ins: [{ shape: [2, 3], batch: true }, { shape: [1, 3] }], f: (x, t) => ops.mul(x!, ops.expand(t!, x!.shape)) },
  { name: 'concat', prim: 'concat', ins: [{ shape: [2, 1] }, { shape: [2, 3] }, { shape: [2, 2] }], f: (a, b, c) => ops.concat([a!, b!, c!], 1) },
  { name: 'slice', prim: 'slice', ins: [{ shape: [4, 5] }], f: (x) => ops.slice(x!, [0, 1], [1, -3], [3, 5]) },
  { name: 'gather repeated', prim: 'gather', ins: [{ shape: [3, 4] }, { shape: [2, 2], init: 'indices' }], indexMax: 4, f: (x, i) => ops.gather(x!, i!, 1) },
  // a token embedding: batch-sized ids [B, L] gather rows of a table; the gradient's scatter-add takes the run-time index count
  { name: 'gather rows by batch-sized ids (embedding)', prim: 'gather', ins: [{ shape: [2, 4], init: 'indices', batch: true }, { shape: [6, 3] }], indexMax: 6, f: (i, x) => ops.gather(x!, i!, 0) },
  { name: 'gatherElements per-sample tokens (repeats accumulate)', prim: 'gatherElements', ins: [{ shape: [2, 5, 3], batch: true }, { shape: [2, 4, 3], init: 'indices', batch: true }], indexMax: 5, f: (x, i) => ops.gatherElements(x!, i!, 1) },
  { name: 'gatherElements repeated', prim: 'gatherElements', ins: [{ shape: [3, 4], batch: true }, { shape: [3, 5], init: 'indices', batch: true }], indexMax: 4, f: (x, i) => ops.gatherElements(x!, i!, 1) },
  { name: 'scatterElementsAdd repeated', prim: 'scatterElementsAdd', ins: [{ shape: [3, 4], batch: true }, { shape: [3, 5], init: 'indices', batch: true }, { shape: [3, 5], batch: true }], indexMax: 4, f: (d, i, u) => ops.scatterElementsAdd(d!, i!, u!, 1) },
  { name: 'topk values (composite: gatherElements of topk)', prim: 'topk', ins: [{ shape: [2, 3, 5] }], f: (x) => ops.gatherElements(x!, ops.topk(x!, 2, 1), 1) },
  { name: 'squeeze', prim: 'squeeze', ins: [{ shape: [3, 1, 2] }], f: (x) => ops.squeeze(x!, 1) },
  { name: 'unsqueeze', prim: 'unsqueeze', ins: [{ shape: [3, 2] }], f: (x) => ops.unsqueeze(x!, [0, 2]) },
  { name: 'pad', prim: 'pad', ins: [{ shape: [2, 3] }], f: (x) => ops.pad(x!, [1, 0, 0, 2], 0.5) },
  // MAE's token shuffle on a fixed masking of 2 samples × 5 patches, 3 kept (argsorts [3, 0, 4, 1, 2] and [1, 2, 0, 4, 3])
  { name: 'keepTokens (MAE masking)', prim: 'keepTokens', ins: [{ shape: [2, 5, 3] }], f: (x) => ops.keepTokens(x!, ...maeMasking(x!)) },
  { name: 'unshuffleTokens (MAE masking, learnt fill)', prim: 'unshuffleTokens', ins: [{ shape: [2, 3, 3] }, { shape: [1, 1, 3] }], f: (v, fill) => ops.unshuffleTokens(v!, fill!, ...maeMasking(v!).reverse() as [Tensor, Tensor]) },
  { name: 'matmul batched broadcast', prim: 'matmul', ins: [{ shape: [2, 1, 3, 4] }, { shape: [3, 4, 2] }], f: ops.matmul },
  { name: 'matmul shared weight', prim: 'matmul', ins: [{ shape: [2, 5, 3], batch: true }, { shape: [3, 4] }], f: ops.matmul },
  { name: 'conv2d padded', prim: 'conv2d', ins: [{ shape: [2, 3, 6, 6] }, { shape: [4, 3, 3, 3] }, { shape: [4] }], f: (x, w, b) => ops.conv2d(x!, w!, b, { padding: 1 }), f32: true },
  { name: 'conv2d strided (im2col weight gradient, far-edge padding)', prim: 'conv2d', ins: [{ shape: [2, 3, 7, 6], batch: true }, { shape: [4, 3, 3, 2] }, { shape: [4] }], f: (x, w, b) => ops.conv2d(x!, w!, b, { stride: [2, 3], padding: [1, 0] }), f32: true },
  { name: 'conv2d stride 2 on an even grid (im2col weight gradient)', prim: 'conv2d', ins: [{ shape: [2, 2, 6, 6], batch: true }, { shape: [3, 2, 3, 3] }], f: (x, w) => ops.conv2d(x!, w!, undefined, { stride: 2, padding: 1 }), f32: true },
  { name: 'conv2d strided grouped dilated', prim: 'conv2d', ins: [{ shape: [2, 4, 9, 9], batch: true }, { shape: [6, 2, 3, 3] }], f: (x, w) => ops.conv2d(x!, w!, undefined, { stride: 2, padding: 1, dilation: 2, groups: 2 }), f32: true },
  { name: 'conv2d pointwise (1×1, matrix-product weight gradient)', prim: 'conv2d', ins: [{ shape: [2, 5, 3, 4], batch: true }, { shape: [6, 5, 1, 1] }, { shape: [6] }], f: (x, w, b) => ops.conv2d(x!, w!, b), f32: true },
  // groups > 1: the input gradient is a stride-1 Conv of the zero-upsampled cotangent; one input channel per group takes depthwiseWeightGrad
  { name: 'conv2d depthwise 3×3', prim: 'conv2d', ins: [{ shape: [2, 4, 6, 6], batch: true }, { shape: [4, 1, 3, 3] }, { shape: [4] }], f: (x, w, b) => ops.conv2d(x!, w!, b, { padding: 1, groups: 4 }), f32: true },
  { name: 'conv2d depthwise strided, multiplier 2', prim: 'depthwiseWeightGrad', ins: [{ shape: [2, 3, 7, 6], batch: true }, { shape: [6, 1, 3, 3] }], f: (x, w) => ops.conv2d(x!, w!, undefined, { stride: 2, padding: 1, groups: 3 }), f32: true },
  { name: 'conv2d depthwise 3×2, stride (2, 1), padding (1, 0)', prim: 'conv2d', ins: [{ shape: [2, 3, 6, 5], batch: true }, { shape: [3, 1, 3, 2] }], f: (x, w) => ops.conv2d(x!, w!, undefined, { stride: [2, 1], padding: [1, 0], groups: 3 }), f32: true },
  { name: 'conv2d grouped, 2 channels per group', prim: 'conv2d', ins: [{ shape: [2, 4, 5, 5], batch: true }, { shape: [6, 2, 3, 3] }], f: (x, w) => ops.conv2d(x!, w!, undefined, { padding: 1, groups: 2 }), f32: true },
  { name: 'conv2d depthwise 1×1 padded (ConvTranspose input gradient)', prim: 'convTranspose2d', ins: [{ shape: [2, 3, 4, 4], batch: true }, { shape: [3, 1, 1, 1] }], f: (x, w) => ops.conv2d(x!, w!, undefined, { padding: 1, groups: 3 }), f32: true },
  { name: 'depthwiseWeightGrad (second order)', prim: 'depthwiseWeightGrad', ins: [{ shape: [2, 6, 4, 3], batch: true }, { shape: [2, 3, 7, 6], batch: true }], f: (g, x) => ops.depthwiseWeightGrad(g!, x!, [3, 3], 2, 1), f32: true },
  { name: 'convTranspose2d', prim: 'convTranspose2d', ins: [{ shape: [2, 4, 3, 3] }], f: (x) => ops.convTranspose2d(x!, x!.graph.constant(Float32Array.from(normal(rng(5), 4 * 2 * 3 * 3)), [4, 2, 3, 3], 'float32'), { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1, outputPadding: [1, 1] }), f32: true },
  { name: 'avgPool2d', prim: 'avgPool2d', ins: [{ shape: [2, 2, 7, 7] }], f: (x) => ops.avgPool2d(x!, 3, 2, 1), f32: true },
  { name: 'softmax', prim: 'softmax', ins: [{ shape: [2, 3, 4] }], f: (x) => ops.softmax(x!, 1) },
  { name: 'chunkedAttention (uneven last chunk)', prim: 'chunkedAttention', ins: [{ shape: [2, 5, 3] }, { shape: [2, 4, 3] }, { shape: [2, 4, 2] }], f: (q, k, v) => ops.chunkedAttention(q!, k!, v!, 2) },
  { name: 'logSoftmax', prim: 'logSoftmax', ins: [{ shape: [3, 5] }], f: (x) => ops.logSoftmax(x!, -1) },
  { name: 'layerNorm', prim: 'layerNorm', ins: [{ shape: [2, 3, 6] }, { shape: [6] }, { shape: [6] }], f: (x, s, b) => ops.layerNorm(x!, s!, b!, 1e-5) },
  { name: 'normalized', prim: 'normalized', ins: [{ shape: [2, 3, 6] }], f: (x) => ops.normalized(x!, 1e-5) },
  { name: 'invStdOfNormalized', prim: 'invStdOfNormalized', ins: [{ shape: [2, 3, 6] }], f: (x) => ops.invStdOfNormalized(x!, ops.normalized(x!, 1e-5)) },
  { name: 'normalized float32 (ORT\'s LayerNormalization, its InvStdDev output)', prim: 'normalized', ins: [{ shape: [2, 3, 6] }], f: (x) => ops.normalized(x!, 1e-5), f32: true },
  { name: 'invStdOfNormalized float32', prim: 'invStdOfNormalized', ins: [{ shape: [2, 3, 6] }], f: (x) => ops.invStdOfNormalized(x!, ops.normalized(x!, 1e-5)), f32: true },
  { name: 'groupNorm (composite)', prim: 'layerNorm', ins: [{ shape: [2, 4, 3, 3], batch: true }, { shape: [4] }, { shape: [4] }], f: (x, s, b) => ops.groupNorm(x!, 2, s!, b!, 1e-5) },
  { name: 'batchNorm (batch statistics)', prim: 'batchNorm', ins: [{ shape: [3, 4, 3, 2], batch: true }, { shape: [4] }, { shape: [4] }], f: (x, s, b) => ops.batchNorm(x!, s!, b!, 1e-5) },
  { name: 'resizeBilinear up, half-pixel', prim: 'resizeBilinear', ins: [{ shape: [2, 3, 4, 5], batch: true }], f: (x) => ops.resizeBilinear(x!, [7, 8]), f32: true },
  { name: 'resizeBilinear down, align corners', prim: 'resizeBilinear', ins: [{ shape: [2, 2, 7, 6] }], f: (x) => ops.resizeBilinear(x!, [3, 4], true), f32: true },
  { name: 'resizeBilinear to one row, half-pixel and one width', prim: 'resizeBilinear', ins: [{ shape: [2, 2, 5, 3] }], f: (x) => ops.resizeBilinear(x!, [1, 3]), f32: true },
  { name: 'roll two axes (composite)', prim: 'concat', ins: [{ shape: [2, 5, 4], batch: true }], f: (x) => ops.mul(ops.roll(x!, [2, -1], [1, 2]), x!) },
  // float32: ORT fuses Mul(x, Sigmoid(x)) into QuickGelu, which has a float kernel only
  { name: 'silu', prim: 'silu', ins: [{ shape: [3, 5] }], f: ops.silu, f32: true },
  { name: 'silu decomposed', prim: 'sigmoid', ins: [{ shape: [3, 5] }], f: ops.siluDecomposed },
  { name: 'gelu', prim: 'gelu', ins: [{ shape: [2, 5] }], f: ops.gelu, f32: true },
  { name: 'gelu decomposed', prim: 'erf', ins: [{ shape: [2, 5] }], f: ops.geluDecomposed, f32: true },
  { name: 'crossEntropy smoothed (composite)', prim: 'logSoftmax', ins: [{ shape: [4, 5] }, { shape: [4], init: 'indices' }], indexMax: 5, f: (l, y) => ops.crossEntropy(l!, y!, { smoothing: 0.1 }) },
  { name: 'weightedCrossEntropy focal, class-weighted (composite)', prim: 'pow', ins: [{ shape: [4, 5] }, { shape: [4, 5], init: 'positive' }], f: (l, t) => ops.weightedCrossEntropy(l!, t!, { classWeights: Float32Array.from([0.5, 2, 1, 3, 1]), gamma: 2 }) },
];

/** [idsKeep [2, 3], idsRestore [2, 5]] of the masking the keepTokens / unshuffleTokens rows use, as graph constants. */
function maeMasking(x: Tensor): [Tensor, Tensor] {
  const ids = (v: number[], shape: number[]) => x.graph.constant(BigInt64Array.from(v, BigInt), shape, 'int64');
  return [ids([3, 0, 4, 1, 2, 0], [2, 3]), ids([1, 3, 4, 0, 2, 2, 0, 1, 4, 3], [2, 5])];
}

export function initData(inp: In, dtype: DType, rand: () => number, indexMax: number): { data: ArrayLike<number | bigint>; dtype: DType } {
  const n = size(inp.shape);
  switch (inp.init ?? 'normal') {
    case 'indices': return { data: BigInt64Array.from({ length: n }, (_, i) => BigInt(i === 1 ? 0 : Math.floor(rand() * indexMax))), dtype: 'int64' };
    case 'bool': return { data: Uint8Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0)), dtype: 'bool' };
    case 'positive': return { data: normal(rand, n).map((v) => Math.abs(v) + 0.5), dtype };
    case 'away': return { data: normal(rand, n).map((v) => (v < 0 ? v - 0.5 : v + 0.5)), dtype };
    default: return { data: normal(rand, n), dtype };
  }
}

export interface BuiltRow {
  traced: TracedFunction;
  dtype: DType;
  init: { data: ArrayLike<number | bigint>; dtype: DType }[];
  /** Indices of the float inputs that get gradients `g0`, `g1`, … */
  floatIdx: number[];
  /** Concrete shape of the cotangent input `cot`. */
  cotShape: number[];
  rand: () => number;
}

/** Traces L = Σ f(inputs) ⊙ cot together with dL/d(float inputs). */
export function buildRow(row: Row): BuiltRow {
  const dtype: DType = row.f32 ? 'float32' : 'float64';
  const rand = rng(row.name.length * 7919);
  const init = row.ins.map((i) => initData(i, dtype, rand, row.indexMax ?? 1));
  const specs: InputSpec[] = row.ins.map((inp, k) => ({
    name: `x${k}`, dtype: init[k]!.dtype,
    shape: inp.batch ? [BATCH, ...inp.shape.slice(1)] : inp.shape,
  }));
  const floatIdx = init.map((d, k) => (d.dtype === dtype ? k : -1)).filter((k) => k >= 0);
  let cotShape: number[] = [];
  const traced = trace((...xs) => {
    const out = row.f(...xs);
    cotShape = out.shape.map((d) => (typeof d === 'number' ? d : d.batch * row.ins[0]!.shape[0]!));
    const c = xs[0]!.graph.input('cot', out.shape, dtype);
    const loss = ops.sum(ops.mul(ops.cast(out, dtype), c));
    const gs = grad(loss, floatIdx.map((k) => xs[k]!));
    return { loss, ...Object.fromEntries(gs.map((g, j) => [`g${j}`, g])) };
  }, specs);
  return { traced, dtype, init, floatIdx, cotShape, rand };
}
