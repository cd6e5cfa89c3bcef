/** Movement primitives: reshapes, permutations, broadcasts, concatenation, slicing, gathers, padding. */
import {
  broadcastShapes, dimEquals, formatShape, isBatchDim, normAxis, numel, shapeEquals, type Dim, type Shape,
} from '../ir/shape.js';
import type { Tensor } from '../ir/tensor.js';
import type { EmitContext, RuleTable } from './prim.js';
import { apply, fail } from './apply.js';

export interface MovementAttrs {
  reshape: { readonly shape: Shape };
  transpose: { readonly perm: readonly number[] };
  expand: { readonly shape: Shape };
  concat: { readonly axis: number };
  slice: { readonly axes: readonly number[]; readonly starts: readonly number[]; readonly ends: readonly number[] };
  gather: { readonly axis: number };
  scatterAdd: { readonly axis: number; readonly shape: Shape };
  gatherElements: { readonly axis: number };
  scatterElementsAdd: { readonly axis: number };
  squeeze: { readonly axes: readonly number[] };
  unsqueeze: { readonly axes: readonly number[] };
  pad: { readonly pads: readonly number[]; readonly value: number };
}

/** Reshape target as ONNX wants it: constants with -1 for a single batch-sized dim. */
export function emitReshape(ctx: EmitContext, input: string, dims: Shape, out?: string): string {
  const symbolic = dims.filter(isBatchDim).length;
  const target = symbolic <= 1 ? ctx.int64s(dims.map((d) => (isBatchDim(d) ? -1 : d))) : ctx.shape(dims);
  return ctx.op('Reshape', [input, target], {}, out);
}

function staticDim(d: Dim, what: string): number {
  return typeof d === 'number' ? d : fail(`${what} must have a static size, not the batch size`);
}

export const movementRules: RuleTable<keyof MovementAttrs> = {
  reshape: {
    infer: ([x], { shape }) => {
      const a = numel(x!.shape);
      const b = numel(shape);
      if (a.coef !== b.coef || a.power !== b.power) fail(`cannot reshape ${formatShape(x!.shape)} to ${formatShape(shape)}`);
      return { dtype: x!.dtype, shape };
    },
    vjp: ({ g, inputs: [x] }) => [reshape(g, x!.shape)],
    emit: (ctx, { inputs, out, attrs }) => void emitReshape(ctx, inputs[0]!, attrs.shape, out),
  },
  transpose: {
    infer: ([x], { perm }) => {
      const sorted = [...perm].sort((p, q) => p - q);
      if (perm.length !== x!.shape.length || sorted.some((p, i) => p !== i)) fail(`perm [${perm.join(', ')}] is not a permutation of ${x!.shape.length} axes`);
      return { dtype: x!.dtype, shape: perm.map((p) => x!.shape[p]!) };
    },
    // the inverse permutation
    vjp: ({ g, attrs: { perm } }) => {
      const inverse: number[] = [];
      perm.forEach((p, i) => { inverse[p] = i; });
      return [transpose(g, inverse)];
    },
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('Transpose', inputs, { perm: { ints: attrs.perm } }, out),
  },
  expand: {
    infer: ([x], { shape }) => {
      const b = broadcastShapes(x!.shape, shape);
      if (!b || !shapeEquals(b, shape)) fail(`cannot broadcast ${formatShape(x!.shape)} to ${formatShape(shape)}`);
      return { dtype: x!.dtype, shape };
    },
    // broadcast axes are summed away centrally by autodiff
    vjp: ({ g }) => [g],
    emit: (ctx, { inputs, out, attrs, inTypes }) => {
      // Expand broadcasts both ways, so a 1 keeps any axis the input already has in full.
      const xs = inTypes[0]!.shape;
      const offset = attrs.shape.length - xs.length;
      const target = attrs.shape.map((d, i) => (i >= offset && dimEquals(xs[i - offset]!, d) ? 1 : d));
      ctx.op('Expand', [inputs[0]!, ctx.shape(target)], {}, out);
    },
  },
  concat: {
    infer: (ins, { axis }) => {
      const first = ins[0]!;
      let total = 0;
      for (const t of ins) {
        if (t.dtype !== first.dtype) fail(`dtype mismatch: ${first.dtype} vs ${t.dtype}`);
        if (t.shape.length !== first.shape.length || t.shape.some((d, i) => i !== axis && !dimEquals(d, first.shape[i]!))) {
          fail(`shapes differ outside axis ${axis}`);
        }
        total += staticDim(t.shape[axis]!, `concat axis ${axis}`);
      }
      return { dtype: first.dtype, shape: first.shape.map((d, i) => (i === axis ? total : d)) };
    },
    // each input gets its own slice of the cotangent
    vjp: ({ g, inputs, attrs: { axis } }) => {
      let start = 0;
      return inputs.map((t) => {
        const size = t.shape[axis] as number;
        const part = slice(g, [axis], [start], [start + size]);
        start += size;
        return part;
      });
    },
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('Concat', inputs, { axis: { i: attrs.axis } }, out),
  },
  slice: {
    infer: ([x], { axes, starts, ends }) => {
      const shape = [...x!.shape];
      axes.forEach((a, i) => {
        const d = staticDim(shape[a]!, `sliced axis ${a}`);
        if (!(starts[i]! >= 0 && starts[i]! <= ends[i]! && ends[i]! <= d)) fail(`slice [${starts[i]}, ${ends[i]}) is out of range for axis ${a} of size ${d}`);
        shape[a] = ends[i]! - starts[i]!;
      });
      return { dtype: x!.dtype, shape };
    },
    // zero-pad the cotangent back to the input's extent
    vjp: ({ g, inputs: [x], attrs: { axes, starts, ends } }) => {
      const rank = x!.rank;
      const pads = new Array<number>(2 * rank).fill(0);
      axes.forEach((a, i) => {
        pads[a] = starts[i]!;
        pads[rank + a] = (x!.shape[a] as number) - ends[i]!;
      });
      return [pad(g, pads, 0)];
    },
    emit: (ctx, { inputs, out, attrs }) =>
      void ctx.op('Slice', [inputs[0]!, ctx.int64s(attrs.starts), ctx.int64s(attrs.ends), ctx.int64s(attrs.axes)], {}, out),
  },
  gather: {
    infer: ([x, idx], { axis }) => {
      if (idx!.dtype !== 'int64' && idx!.dtype !== 'int32') fail(`indices must be int64 or int32, got ${idx!.dtype}`);
      const s = x!.shape;
      return { dtype: x!.dtype, shape: [...s.slice(0, axis), ...idx!.shape, ...s.slice(axis + 1)] };
    },
    // scatter-add the cotangent back to the gathered positions (repeated indices accumulate)
    vjp: ({ g, inputs: [x, idx], attrs: { axis } }) => [scatterAdd(g, idx!, axis, x!.shape), null],
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('Gather', inputs, { axis: { i: attrs.axis } }, out),
  },
  scatterAdd: {
    infer: ([u], { shape }) => ({ dtype: u!.dtype, shape }),
    vjp: 'nondiff',
    emit: (ctx, { inputs: [updates, indices], out, attrs: { axis, shape }, inTypes, outType }) => {
      const n = numel(inTypes[1]!.shape);
      // indices whose count depends on the batch (token ids [B, L]) flatten to -1, and the
      // expanded index tensor takes the flattened updates' run-time shape
      const dynamic = n.power !== 0;
      const count = dynamic ? -1 : n.coef;
      const flat = [...shape.slice(0, axis), count, ...shape.slice(axis + 1)];
      const ones = (k: number) => new Array<number>(k).fill(1);
      const u = emitReshape(ctx, updates!, flat);
      const i1 = emitReshape(ctx, indices!, [...ones(axis), count, ...ones(shape.length - axis - 1)]);
      const i2 = ctx.op('Expand', [i1, dynamic ? ctx.op('Shape', [u]) : ctx.shape(flat)]);
      const zeros = ctx.op('Expand', [ctx.scalar(0, outType.dtype), ctx.shape(shape)]);
      ctx.op('ScatterElements', [zeros, i2, u], { axis: { i: axis }, reduction: { s: 'add' } }, out);
    },
  },
  // torch.gather: out[…, i, …] = x[…, idx[…, i, …], …] along `axis`, one index per output element
  gatherElements: {
    infer: ([x, idx], { axis }) => {
      if (idx!.dtype !== 'int64') fail(`indices must be int64, got ${idx!.dtype}`);
      if (idx!.shape.length !== x!.shape.length) fail(`indices of rank ${idx!.shape.length} for data of rank ${x!.shape.length}`);
      if (idx!.shape.some((d, i) => i !== axis && !dimEquals(d, x!.shape[i]!))) fail(`indices ${formatShape(idx!.shape)} differ from data ${formatShape(x!.shape)} outside axis ${axis}`);
      return { dtype: x!.dtype, shape: idx!.shape };
    },
    // d x = the cotangent added back where each element was taken from (repeats accumulate)
    vjp: ({ g, inputs: [x, idx], attrs: { axis } }) => [scatterElementsAdd(expand(x!.graph.scalar(0, g.dtype), x!.shape), idx!, g, axis), null],
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('GatherElements', inputs, { axis: { i: attrs.axis } }, out),
  },
  // torch.scatter_add: out = data, then out[…, idx[…, i, …], …] += updates[…, i, …] along `axis`
  scatterElementsAdd: {
    infer: ([data, idx, updates], { axis }) => {
      if (idx!.dtype !== 'int64') fail(`indices must be int64, got ${idx!.dtype}`);
      if (!shapeEquals(idx!.shape, updates!.shape)) fail(`indices ${formatShape(idx!.shape)} and updates ${formatShape(updates!.shape)} differ`);
      if (updates!.dtype !== data!.dtype) fail(`dtype mismatch: ${data!.dtype} vs ${updates!.dtype}`);
      if (idx!.shape.length !== data!.shape.length || idx!.shape.some((d, i) => i !== axis && !dimEquals(d, data!.shape[i]!))) fail(`indices ${formatShape(idx!.shape)} differ from data ${formatShape(data!.shape)} outside axis ${axis}`);
      return { dtype: data!.dtype, shape: data!.shape };
    },
    // d data = g; d updates = g read back at the scattered positions
    vjp: ({ g, inputs: [, idx], attrs: { axis } }) => [g, null, gatherElements(g, idx!, axis)],
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('ScatterElements', inputs, { axis: { i: attrs.axis }, reduction: { s: 'add' } }, out),
  },
  squeeze: {
    infer: ([x], { axes }) => {
      for (const a of axes) if (x!.shape[a] !== 1) fail(`cannot squeeze axis ${a} of size ${String(x!.shape[a])}`);
      return { dtype: x!.dtype, shape: x!.shape.filter((_, i) => !axes.includes(i)) };
    },
    vjp: ({ g, inputs: [x] }) => [reshape(g, x!.shape)],
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('Squeeze', [inputs[0]!, ctx.int64s(attrs.axes)], {}, out),
  },
  unsqueeze: {
    infer: ([x], { axes }) => {
      const shape: Dim[] = [];
      const rank = x!.shape.length + axes.length;
      let j = 0;
      for (let i = 0; i < rank; i++) shape.push(axes.includes(i) ? 1 : x!.shape[j++]!);
      return { dtype: x!.dtype, shape };
    },
    vjp: ({ g, inputs: [x] }) => [reshape(g, x!.shape)],
    emit: (ctx, { inputs, out, attrs }) => void ctx.op('Unsqueeze', [inputs[0]!, ctx.int64s(attrs.axes)], {}, out),
  },
  pad: {
    infer: ([x], { pads }) => {
      const rank = x!.shape.length;
      if (pads.length !== 2 * rank) fail(`pads needs ${2 * rank} values (all begins, then all ends), got ${pads.length}`);
      if (pads.some((p) => p < 0)) fail(`pads must be non-negative, got [${pads.join(', ')}]`);
      const shape = x!.shape.map((d, i) => {
        if (pads[i] === 0 && pads[rank + i] === 0) return d;
        return staticDim(d, `padded axis ${i}`) + pads[i]! + pads[rank + i]!;
      });
      return { dtype: x!.dtype, shape };
    },
    // the cotangent of the unpadded interior
    vjp: ({ g, inputs: [x], attrs: { pads } }) => {
      const rank = x!.rank;
      const axes = x!.shape.map((_, i) => i).filter((i) => pads[i] !== 0 || pads[rank + i] !== 0);
      const starts = axes.map((a) => pads[a]!);
      return [slice(g, axes, starts, axes.map((a, k) => starts[k]! + (x!.shape[a] as number)))];
    },
    emit: (ctx, { inputs, out, attrs, inTypes }) =>
      void ctx.op('Pad', [inputs[0]!, ctx.int64s(attrs.pads), ctx.scalar(attrs.value, inTypes[0]!.dtype)], { mode: { s: 'constant' } }, out),
  },
};

// ---- ops ------------------------------------------------------------------------------------

/**
 * Reshape. Entries may be numbers, batch dims (`BATCH`, or `{ batch: k }` for k·B) and at most
 * one -1, inferred from the element count.
 */
export function reshape(x: Tensor, shape: readonly Dim[]): Tensor {
  const resolved = resolveReshape(x.shape, shape);
  if (shapeEquals(resolved, x.shape)) return x;
  return apply('reshape', [x], { shape: resolved });
}

function resolveReshape(from: Shape, to: readonly Dim[]): Dim[] {
  const holes = to.filter((d) => d === -1).length;
  if (holes === 0) return [...to];
  if (holes > 1) fail(`reshape: at most one -1 allowed in ${formatShape(to)}`);
  const total = numel(from);
  const known = numel(to.filter((d) => d !== -1));
  const coef = total.coef / known.coef;
  const power = total.power - known.power;
  if (!Number.isInteger(coef) || power < 0 || power > 1) fail(`reshape: cannot reshape ${formatShape(from)} to ${formatShape(to)}`);
  return to.map((d) => (d === -1 ? (power === 1 ? { batch: coef } : coef) : d));
}

export function transpose(x: Tensor, perm: readonly number[]): Tensor {
  const norm = perm.map((p) => normAxis(p, x.rank, 'transpose'));
  if (norm.every((p, i) => p === i)) return x;
  return apply('transpose', [x], { perm: norm });
}

/** Swaps the last two axes. */
export function mT(x: Tensor): Tensor {
  const perm = x.shape.map((_, i) => i);
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1]!, perm[x.rank - 2]!];
  return transpose(x, perm);
}

export function expand(x: Tensor, shape: Shape): Tensor {
  if (shapeEquals(x.shape, shape)) return x;
  return apply('expand', [x], { shape });
}

export function concat(xs: readonly Tensor[], axis: number): Tensor {
  if (xs.length === 0) fail('concat: needs at least one tensor');
  if (xs.length === 1) return xs[0]!;
  return apply('concat', xs, { axis: normAxis(axis, xs[0]!.rank, 'concat') });
}

/** `x[start:end]` along each of `axes` (step 1; negative bounds count from the end). */
export function slice(x: Tensor, axes: readonly number[], starts: readonly number[], ends: readonly number[]): Tensor {
  const na = axes.map((a) => normAxis(a, x.rank, 'slice'));
  const clamp = (v: number, d: number) => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
  const size = (a: number) => staticDim(x.shape[a]!, `slice: axis ${a}`);
  const s = na.map((a, i) => clamp(starts[i]!, size(a)));
  const e = na.map((a, i) => clamp(ends[i]!, size(a)));
  return apply('slice', [x], { axes: na, starts: s, ends: e });
}

/** Takes `indices` along `axis` (numpy.take). */
export function gather(x: Tensor, indices: Tensor, axis: number): Tensor {
  return apply('gather', [x, indices], { axis: normAxis(axis, x.rank, 'gather') });
}

/** Adds `updates` into zeros of `shape` at `indices` along `axis`; the adjoint of gather. */
export function scatterAdd(updates: Tensor, indices: Tensor, axis: number, shape: Shape): Tensor {
  return apply('scatterAdd', [updates, indices], { axis, shape });
}

/** torch.gather along `axis`: `indices` (int64, x's rank) picks one element of x per output element. */
export function gatherElements(x: Tensor, indices: Tensor, axis: number): Tensor {
  return apply('gatherElements', [x, indices], { axis: normAxis(axis, x.rank, 'gatherElements') });
}

/** torch.scatter_add: `data` with each of `updates` added at its index along `axis`. */
export function scatterElementsAdd(data: Tensor, indices: Tensor, updates: Tensor, axis: number): Tensor {
  return apply('scatterElementsAdd', [data, indices, updates], { axis: normAxis(axis, data.rank, 'scatterElementsAdd') });
}

export function squeeze(x: Tensor, axes: number | readonly number[]): Tensor {
  const list = (typeof axes === 'number' ? [axes] : axes).map((a) => normAxis(a, x.rank, 'squeeze'));
  return apply('squeeze', [x], { axes: [...new Set(list)].sort((p, q) => p - q) });
}

export function unsqueeze(x: Tensor, axes: number | readonly number[]): Tensor {
  const list = typeof axes === 'number' ? [axes] : axes;
  const rank = x.rank + list.length;
  const norm = list.map((a) => normAxis(a, rank, 'unsqueeze'));
  return apply('unsqueeze', [x], { axes: [...new Set(norm)].sort((p, q) => p - q) });
}

/** Constant padding; `pads` is ONNX's layout: all begins, then all ends. */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.every((p) => p === 0)) return x;
  return apply('pad', [x], { pads, value });
}

/**
 * torch.roll: shifts x cyclically by `shifts[k]` along `axes[k]`, out[i] = x[(i − shift) mod n],
 * as a slice and a concatenation per axis (their VJPs give the reverse roll).
 */
export function roll(x: Tensor, shifts: number | readonly number[], axes: number | readonly number[]): Tensor {
  const s = typeof shifts === 'number' ? [shifts] : shifts;
  const a = typeof axes === 'number' ? [axes] : axes;
  if (s.length !== a.length) fail(`roll: ${s.length} shifts for ${a.length} axes`);
  return a.reduce((t, axis, k) => {
    const ax = normAxis(axis, t.rank, 'roll');
    const n = staticDim(t.shape[ax]!, `roll: axis ${axis}`);
    const shift = ((s[k]! % n) + n) % n;
    if (shift === 0) return t;
    return concat([slice(t, [ax], [n - shift], [n]), slice(t, [ax], [0], [n - shift])], ax);
  }, x);
}
