/**
 * Reverse-mode autodiff over a traced graph.
 *
 * Walk the nodes that lie between `wrt` and `loss` in reverse topological order (node ids are
 * already topological). Each node's VJP rule maps the cotangent of its output to cotangents of
 * its inputs; those are summed back to each input's shape (un-broadcast) and accumulated.
 * Gradients flow through float tensors only.
 */
import { isFloat } from '../ir/dtype.js';
import { GraphError } from '../ir/errors.js';
import type { OpNode } from '../ir/graph.js';
import { formatShape, shapeEquals, staticNumel, type Shape } from '../ir/shape.js';
import type { Tensor } from '../ir/tensor.js';
import { add, concat, expand, geluRecomputed, reshape, sum } from '../ops/index.js';
import type { Prim } from '../ops/prim.js';
import { ruleFor } from '../ops/rules.js';

/** Sums a cotangent over the axes that broadcasting added, giving it the input's shape. */
export function sumToShape(t: Tensor, shape: Shape): Tensor {
  if (shapeEquals(t.shape, shape)) return t;
  const lead = t.rank - shape.length;
  const axes: number[] = [];
  t.shape.forEach((d, i) => {
    if (i < lead || (shape[i - lead] === 1 && d !== 1)) axes.push(i);
  });
  return reshape(sum(t, axes, true), shape);
}

const describe = (t: Tensor, i: number): string => {
  const n = t.node;
  const name = n.kind === 'input' || n.kind === 'param' ? `"${n.name}"` : `#${i}`;
  return `${name} ${t.dtype}${formatShape(t.shape)}`;
};

/**
 * Gradients of `loss` with respect to each of `wrt` (parameters or inputs alike).
 * A non-scalar loss needs `seed`, the cotangent to pull back (a vector-Jacobian product).
 */
export function grad(loss: Tensor, wrt: readonly Tensor[], seed?: Tensor): Tensor[] {
  const graph = loss.graph;
  if (!isFloat(loss.dtype)) throw new GraphError(`grad: the loss must be a float tensor, got ${loss.dtype}`);
  wrt.forEach((w, i) => {
    if (w.graph !== graph) throw new GraphError(`grad: wrt ${describe(w, i)} belongs to another graph`);
    if (!isFloat(w.dtype)) throw new GraphError(`grad: cannot differentiate with respect to ${describe(w, i)}: not a float tensor`);
  });
  if (seed) {
    if (!shapeEquals(seed.shape, loss.shape)) {
      throw new GraphError(`grad: seed shape ${formatShape(seed.shape)} differs from loss shape ${formatShape(loss.shape)}`);
    }
  } else if (staticNumel(loss.shape) !== 1) {
    throw new GraphError(`grad: the loss must be a scalar, got shape ${formatShape(loss.shape)}; reduce it (e.g. mean) or pass a seed of that shape`);
  }

  // Nodes that depend on some wrt: only they can carry gradient back.
  const onPath = dependents(wrt, loss);
  const first = Math.min(...wrt.map((w) => w.id));

  // Contributions are kept apart until the tensor's own node is reached, so they can be combined
  // as a whole (see combineCotangents) rather than added pairwise as they arrive.
  const contributions = new Map<number, Tensor[]>();
  const accumulate = (id: number, t: Tensor) => {
    const parts = contributions.get(id);
    if (parts) parts.push(t);
    else contributions.set(id, [t]);
  };
  // combined once per tensor: a wrt that is an op node is read both in the loop and at the end
  const combined = new Map<number, Tensor>();
  const cotangent = (id: number): Tensor | undefined => {
    const parts = contributions.get(id);
    if (!parts) return undefined;
    let ct = combined.get(id);
    if (!ct) combined.set(id, (ct = graph.atScope(graph.node(id).scope, () => combineCotangents(parts))));
    return ct;
  };
  accumulate(loss.id, seed ?? expand(graph.scalar(1, loss.dtype), loss.shape));

  // Forward values the VJPs read are saved until the backward pass reaches them, except those
  // a model marks cheaper to compute again: the output of a geluRecomputedInBackward (or a
  // reshape of it, as a Linear reads it) is recomputed from its input, which its VJP keeps anyway.
  const recomputed = new Map<number, Tensor>();
  const forBackward = (t: Tensor): Tensor => {
    let base = t.node;
    while (base.kind === 'op' && base.prim === 'reshape') base = graph.node(base.inputs[0]!);
    if (base.kind !== 'op' || base.prim !== 'gelu' || !(base.attrs as { recomputeInBackward?: boolean }).recomputeInBackward) return t;
    let r = recomputed.get(t.id);
    if (!r) {
      const gelu = base;
      r = graph.atScope(gelu.scope, () => {
        const again = geluRecomputed(graph.tensor(gelu.inputs[0]!));
        return gelu.id === t.id ? again : reshape(again, t.shape);
      });
      recomputed.set(t.id, r);
    }
    return r;
  };

  for (let id = loss.id; id >= first; id--) {
    const node = graph.node(id);
    if (node.kind !== 'op' || !onPath.has(id)) continue;
    const g = cotangent(id);
    if (!g) continue;
    const inputs = node.inputs.map((i) => graph.tensor(i));
    const needs = inputs.map((t) => onPath.has(t.id) && isFloat(t.dtype));
    if (!needs.some(Boolean)) continue;
    const rule = ruleFor(node.prim as Prim);
    if (rule.vjp === 'nondiff') throw nonDifferentiable(node);
    const vjp = rule.vjp;
    const cts = graph.atScope(node.scope, () =>
      vjp({ g, inputs: inputs.map(forBackward), out: graph.tensor(id), attrs: node.attrs as never, needs }));
    inputs.forEach((t, k) => {
      const ct = cts[k];
      if (needs[k] && ct) accumulate(t.id, graph.atScope(node.scope, () => sumToShape(ct, t.shape)));
    });
  }

  return wrt.map((w, i) => {
    const ct = cotangent(w.id);
    if (ct) return ct;
    const own = dependents([w], loss);
    if (own.has(loss.id)) {
      const blocker = findBlocker(loss, own);
      throw new GraphError(`grad: the loss depends on ${describe(w, i)} only through ${blocker}, which is not differentiable`);
    }
    // Unused by the loss: its gradient is zero (e.g. a head that this forward pass skipped).
    return expand(graph.scalar(0, w.dtype), w.shape);
  });
}

/**
 * The sum of a tensor's cotangent contributions. When they are the zero-padded cotangents of
 * slices that tile one axis exactly (the q, k and v parts of a fused qkv projection), their sum is
 * the concatenation of the unpadded pieces: one Concat instead of a Pad per piece and the Adds of
 * mostly-zero tensors (measured: the Pads alone were 5% of the ORT kernel time of a ViT-Ti
 * training step).
 */
function combineCotangents(parts: readonly Tensor[]): Tensor {
  if (parts.length === 1) return parts[0]!;
  return concatOfPaddedSlices(parts) ?? parts.reduce((a, b) => add(a, b));
}

function concatOfPaddedSlices(parts: readonly Tensor[]): Tensor | undefined {
  let axis = -1;
  const pieces: { start: number; size: number; inner: Tensor }[] = [];
  for (const p of parts) {
    const n = p.node;
    if (n.kind !== 'op' || n.prim !== 'pad') return undefined;
    const { pads, value } = n.attrs as { pads: readonly number[]; value: number };
    if (value !== 0) return undefined;
    const padded = p.shape.map((_, i) => i).filter((i) => pads[i] !== 0 || pads[p.rank + i] !== 0);
    if (padded.length !== 1 || (axis >= 0 && padded[0] !== axis)) return undefined;
    axis = padded[0]!;
    const inner = p.graph.tensor(n.inputs[0]!);
    pieces.push({ start: pads[axis]!, size: inner.shape[axis] as number, inner });
  }
  pieces.sort((a, b) => a.start - b.start);
  let end = 0;
  for (const piece of pieces) {
    if (piece.start !== end) return undefined; // a gap or an overlap: add instead
    end += piece.size;
  }
  if (end !== parts[0]!.shape[axis]) return undefined;
  return concat(pieces.map((piece) => piece.inner), axis);
}

/** Ids of the nodes up to `loss` that depend on any of `roots`. */
function dependents(roots: readonly Tensor[], loss: Tensor): Set<number> {
  const set = new Set(roots.map((w) => w.id));
  for (let id = Math.min(...set); id <= loss.id; id++) {
    const n = loss.graph.node(id);
    if (n.kind === 'op' && n.inputs.some((i) => set.has(i))) set.add(id);
  }
  return set;
}

function nonDifferentiable(node: OpNode): GraphError {
  const where = node.scope ? ` in ${node.scope}` : '';
  return new GraphError(`grad: ${node.prim}${where} is not differentiable, but it lies on the gradient path`);
}

/** Names a node on the path whose output drops the gradient (an integer/bool result or a non-differentiable op). */
function findBlocker(loss: Tensor, onPath: Set<number>): string {
  const graph = loss.graph;
  for (let id = loss.id; id >= 0; id--) {
    const n = graph.node(id);
    if (n.kind !== 'op' || !onPath.has(id)) continue;
    const dropsGradient = !isFloat(n.dtype) || ruleFor(n.prim as Prim).vjp === 'nondiff';
    if (dropsGradient && n.inputs.some((i) => onPath.has(i) && isFloat(graph.node(i).dtype))) {
      return `${n.prim}${n.scope ? ` (in ${n.scope})` : ''}`;
    }
  }
  return 'a non-differentiable op';
}
