/**
 * A symbolic tensor: a handle to one node of a traced graph. Operations on it record new nodes;
 * nothing is computed until the graph is compiled and run.
 */
import type { Graph, Node } from './graph.js';
import type { DType } from './dtype.js';
import { formatShape, type Shape } from './shape.js';
import * as ops from '../ops/index.js';

type TensorLike = Tensor | number;

export class Tensor {
  constructor(readonly graph: Graph, readonly id: number) {}

  get node(): Node {
    return this.graph.node(this.id);
  }
  get shape(): Shape {
    return this.node.shape;
  }
  get dtype(): DType {
    return this.node.dtype;
  }
  get rank(): number {
    return this.node.shape.length;
  }
  toString(): string {
    return `Tensor(%${this.id}: ${this.dtype}${formatShape(this.shape)})`;
  }

  add(o: TensorLike): Tensor { return ops.add(this, o); }
  sub(o: TensorLike): Tensor { return ops.sub(this, o); }
  mul(o: TensorLike): Tensor { return ops.mul(this, o); }
  div(o: TensorLike): Tensor { return ops.div(this, o); }
  pow(o: TensorLike): Tensor { return ops.pow(this, o); }
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  tanh(): Tensor { return ops.tanh(this); }
  abs(): Tensor { return ops.abs(this); }
  relu(): Tensor { return ops.relu(this); }
  gelu(): Tensor { return ops.gelu(this); }
  cast(to: DType): Tensor { return ops.cast(this, to); }
  matmul(o: Tensor): Tensor { return ops.matmul(this, o); }
  reshape(shape: readonly (number | Shape[number])[]): Tensor { return ops.reshape(this, shape); }
  transpose(perm: readonly number[]): Tensor { return ops.transpose(this, perm); }
  sum(axes?: number | readonly number[], keepdims = false): Tensor { return ops.sum(this, axes, keepdims); }
  mean(axes?: number | readonly number[], keepdims = false): Tensor { return ops.mean(this, axes, keepdims); }
  max(axes?: number | readonly number[], keepdims = false): Tensor { return ops.max(this, axes, keepdims); }
  softmax(axis = -1): Tensor { return ops.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return ops.logSoftmax(this, axis); }
  argmax(axis = -1, keepdims = false): Tensor { return ops.argmax(this, axis, keepdims); }
}
