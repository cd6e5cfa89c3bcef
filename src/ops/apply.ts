/** Applies a primitive to tensors: checks shapes with its rule and records the node. */
import { Tensor } from '../ir/tensor.js';
import { ShapeError } from '../ir/errors.js';
import { formatShape } from '../ir/shape.js';
import type { Prim, PrimAttrs } from './prim.js';
import { ruleFor } from './rules.js';

export type TensorLike = Tensor | number;

export function apply<P extends Prim>(prim: P, inputs: readonly Tensor[], attrs: PrimAttrs[P]): Tensor {
  const graph = inputs[0]!.graph;
  let type;
  try {
    type = ruleFor(prim).infer(inputs, attrs);
  } catch (e) {
    if (!(e instanceof ShapeError)) throw e;
    const where = graph.scope ? ` (in ${graph.scope})` : '';
    const shapes = inputs.map((t) => `${t.dtype}${formatShape(t.shape)}`).join(', ');
    throw new ShapeError(`${prim}${where}: ${e.message}; inputs: ${shapes}`);
  }
  return graph.addOp(prim, inputs, attrs, type.dtype, type.shape);
}

/** Lifts numbers to rank-0 constants of the tensor operand's dtype. */
export function lift(a: TensorLike, b: TensorLike, op: string): [Tensor, Tensor] {
  if (a instanceof Tensor && b instanceof Tensor) return [a, b];
  if (a instanceof Tensor) return [a, a.graph.scalar(b as number, a.dtype)];
  if (b instanceof Tensor) return [b.graph.scalar(a, b.dtype), b];
  throw new ShapeError(`${op}: at least one operand must be a tensor, got two numbers`);
}

export const fail = (msg: string): never => {
  throw new ShapeError(msg);
};
