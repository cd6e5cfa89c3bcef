/**
 * The primitive contract. Every primitive has one stanza in its family file with three rules
 * side by side: a shape/dtype rule, a VJP rule and an ONNX emission. The combined table in
 * `rules.ts` is typed `{ [P in Prim]: Rule<P> }`, so a primitive without a rule does not compile.
 */
import type { DType } from '../ir/dtype.js';
import type { Shape } from '../ir/shape.js';
import type { Tensor } from '../ir/tensor.js';
import type { ElementwiseAttrs } from './elementwise.js';
import type { ReduceAttrs } from './reduce.js';
import type { MovementAttrs } from './movement.js';
import type { LinalgAttrs } from './linalg.js';
import type { NnAttrs } from './nn.js';
import type { ConvFamilyAttrs } from './conv.js';
import type { AttentionAttrs } from './attention.js';
import type { TokenShuffleAttrs } from './token_shuffle.js';

/** Attributes of every primitive, keyed by primitive name. The keys form the closed enum `Prim`. */
export interface PrimAttrs extends ElementwiseAttrs, ReduceAttrs, MovementAttrs, LinalgAttrs, ConvFamilyAttrs, NnAttrs, AttentionAttrs, TokenShuffleAttrs {}
export type Prim = keyof PrimAttrs;

export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

export type OnnxAttr =
  | { readonly i: number }
  | { readonly f: number }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly s: string };

/** What an emission rule may do: add ONNX nodes and small int64 constants. */
export interface EmitContext {
  readonly opset: number;
  /**
   * Adds a node and returns the name of its (first) output; `output` fixes that name, or, as a
   * list, the names of all its outputs (TopK's values and indices).
   */
  op(opType: string, inputs: readonly string[], attrs?: Record<string, OnnxAttr>, output?: string | readonly string[]): string;
  /** A 1-D int64 initializer. */
  int64s(values: readonly number[]): string;
  /** A rank-0 initializer of the given dtype. */
  scalar(value: number, dtype: DType): string;
  /** A 1-D int64 tensor holding `dims`, with the batch size read at run time where needed. */
  shape(dims: Shape): string;
}

export interface VjpArgs<A> {
  /** Cotangent of the output, in the output's shape. */
  readonly g: Tensor;
  readonly inputs: readonly Tensor[];
  readonly out: Tensor;
  readonly attrs: A;
  /** Which inputs need a gradient; rules may skip the others. */
  readonly needs: readonly boolean[];
}

/**
 * Returns one cotangent per input, in the *output's* broadcast shape or the input's own shape
 * (autodiff sums broadcast axes away centrally), or null where an input gets no gradient.
 */
export type Vjp<A> = (args: VjpArgs<A>) => (Tensor | null)[];

export interface EmitArgs<A> {
  readonly inputs: readonly string[];
  readonly out: string;
  readonly attrs: A;
  readonly inTypes: readonly TensorType[];
  readonly outType: TensorType;
}

/** The three rules of one primitive, over its attribute type `A`. */
export interface Rule<A> {
  /** Output dtype and shape; throws a ShapeError (without scope: `apply` adds it) on bad input. */
  infer(inputs: readonly TensorType[], attrs: A): TensorType;
  /** 'nondiff' marks primitives whose outputs carry no gradient (argmax, comparisons, sign). */
  vjp: Vjp<A> | 'nondiff';
  emit(ctx: EmitContext, args: EmitArgs<A>): void;
}

export type RuleTable<K extends Prim> = { [P in K]: Rule<PrimAttrs[P]> };
