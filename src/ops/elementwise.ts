/** Elementwise primitives with numpy broadcasting. */
import type { DType } from '../ir/dtype.js';
import { isFloat, onnxDTypeCode } from '../ir/dtype.js';
import { broadcastShapes, formatShape } from '../ir/shape.js';
import { Tensor } from '../ir/tensor.js';
import type { EmitArgs, EmitContext, Rule, RuleTable, TensorType } from './prim.js';
import { apply, fail, lift, type TensorLike } from './apply.js';

type NoAttrs = Record<string, never>;
const none: NoAttrs = {};

export interface ElementwiseAttrs {
  add: NoAttrs; sub: NoAttrs; mul: NoAttrs; div: NoAttrs; pow: NoAttrs;
  maximum: NoAttrs; minimum: NoAttrs;
  neg: NoAttrs; exp: NoAttrs; log: NoAttrs; sqrt: NoAttrs; tanh: NoAttrs; erf: NoAttrs;
  abs: NoAttrs; sigmoid: NoAttrs; sign: NoAttrs; stopGradient: NoAttrs;
  where: NoAttrs;
  equal: NoAttrs; less: NoAttrs; greater: NoAttrs; lessEqual: NoAttrs; greaterEqual: NoAttrs;
  cast: { to: DType };
}

// ---- shape rules ---------------------------------------------------------------------------

function broadcastType(ins: readonly TensorType[], outDtype?: DType): TensorType {
  const [a, b] = ins as [TensorType, TensorType];
  if (a.dtype !== b.dtype) fail(`dtype mismatch: ${a.dtype} vs ${b.dtype}`);
  const shape = broadcastShapes(a.shape, b.shape)
    ?? fail(`shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} do not broadcast`);
  return { dtype: outDtype ?? a.dtype, shape };
}

function floatOnly(t: TensorType): TensorType {
  if (!isFloat(t.dtype)) fail(`expected a float tensor, got ${t.dtype}`);
  return t;
}

const emitAs = (opType: string) => (ctx: EmitContext, a: EmitArgs<unknown>) => {
  ctx.op(opType, a.inputs, {}, a.out);
};

function binary(opType: string, vjp: Rule<NoAttrs>['vjp']): Rule<NoAttrs> {
  return { infer: (ins) => broadcastType(ins), vjp, emit: emitAs(opType) };
}
function unary(opType: string, vjp: Rule<NoAttrs>['vjp']): Rule<NoAttrs> {
  return { infer: (ins) => floatOnly(ins[0]!), vjp, emit: emitAs(opType) };
}
function comparison(opType: string): Rule<NoAttrs> {
  return { infer: (ins) => broadcastType(ins, 'bool'), vjp: 'nondiff', emit: emitAs(opType) };
}

// ---- the table ------------------------------------------------------------------------------

export const elementwiseRules: RuleTable<keyof ElementwiseAttrs> = {
  // d(a+b) = da + db
  add: binary('Add', ({ g }) => [g, g]),
  // d(a-b) = da - db
  sub: binary('Sub', ({ g }) => [g, neg(g)]),
  // d(ab) = b da + a db
  mul: binary('Mul', ({ g, inputs: [a, b], needs }) => [needs[0] ? mul(g, b!) : null, needs[1] ? mul(g, a!) : null]),
  // d(a/b) = da / b - (a/b) db / b
  div: binary('Div', ({ g, inputs: [, b], out, needs }) => [
    needs[0] ? div(g, b!) : null,
    needs[1] ? neg(div(mul(g, out), b!)) : null,
  ]),
  // d(a^b) = b a^(b-1) da + log(a) a^b db
  pow: binary('Pow', ({ g, inputs: [a, b], out, needs }) => [
    needs[0] ? mul(g, mul(b!, pow(a!, sub(b!, 1)))) : null,
    needs[1] ? mul(g, mul(out, log(a!))) : null,
  ]),
  // the larger operand takes the gradient; ties go to the first
  maximum: binary('Max', ({ g, inputs: [a, b] }) => {
    const firstWins = where(greaterEqual(a!, b!), 1, 0, g.dtype);
    return [mul(g, firstWins), mul(g, sub(1, firstWins))];
  }),
  minimum: binary('Min', ({ g, inputs: [a, b] }) => {
    const firstWins = where(lessEqual(a!, b!), 1, 0, g.dtype);
    return [mul(g, firstWins), mul(g, sub(1, firstWins))];
  }),
  // d(-a) = -da
  neg: unary('Neg', ({ g }) => [neg(g)]),
  // d(e^a) = e^a da
  exp: unary('Exp', ({ g, out }) => [mul(g, out)]),
  // d(log a) = da / a
  log: unary('Log', ({ g, inputs: [a] }) => [div(g, a!)]),
  // d(sqrt a) = da / (2 sqrt a)
  sqrt: unary('Sqrt', ({ g, out }) => [div(mul(g, 0.5), out)]),
  // d(tanh a) = (1 - tanh² a) da
  tanh: unary('Tanh', ({ g, out }) => [mul(g, sub(1, mul(out, out)))]),
  // d(erf a) = 2/√π e^(-a²) da
  erf: unary('Erf', ({ g, inputs: [a] }) => [mul(g, mul(exp(neg(mul(a!, a!))), 2 / Math.sqrt(Math.PI)))]),
  // d|a| = sign(a) da
  abs: unary('Abs', ({ g, inputs: [a] }) => [mul(g, sign(a!))]),
  // dσ(a) = σ(a)(1 - σ(a)) da
  sigmoid: unary('Sigmoid', ({ g, out }) => [mul(g, mul(out, sub(1, out)))]),
  sign: { infer: (ins) => ins[0]!, vjp: 'nondiff', emit: emitAs('Sign') },
  // the value passes unchanged, the gradient stops (torch's detach; straight-through estimators)
  stopGradient: { infer: (ins) => ins[0]!, vjp: () => [null], emit: emitAs('Identity') },
  where: {
    infer: ([c, a, b]) => {
      if (c!.dtype !== 'bool') fail(`condition must be bool, got ${c!.dtype}`);
      const ab = broadcastType([a!, b!]);
      const shape = broadcastShapes(c!.shape, ab.shape)
        ?? fail(`condition shape ${formatShape(c!.shape)} does not broadcast with ${formatShape(ab.shape)}`);
      return { dtype: ab.dtype, shape };
    },
    // the gradient flows to whichever branch was selected
    vjp: ({ g, inputs: [c], needs }) => [
      null,
      needs[1] ? where(c!, g, 0) : null,
      needs[2] ? where(c!, 0, g) : null,
    ],
    emit: emitAs('Where'),
  },
  equal: comparison('Equal'),
  less: comparison('Less'),
  greater: comparison('Greater'),
  lessEqual: comparison('LessOrEqual'),
  greaterEqual: comparison('GreaterOrEqual'),
  cast: {
    infer: ([a], { to }) => ({ dtype: to, shape: a!.shape }),
    // a cast between float types passes the gradient back in the source type
    vjp: ({ g, inputs: [a] }) => [isFloat(a!.dtype) ? cast(g, a!.dtype) : null],
    emit: (ctx, { inputs, out, attrs }) => {
      ctx.op('Cast', inputs, { to: { i: dtypeCode(attrs.to) } }, out);
    },
  },
};

const dtypeCode = (d: DType): number => onnxDTypeCode[d];

// ---- ops ------------------------------------------------------------------------------------

const binaryOp = (prim: 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'maximum' | 'minimum') =>
  (a: TensorLike, b: TensorLike): Tensor => apply(prim, lift(a, b, prim), none);
const unaryOp = (prim: 'neg' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'erf' | 'abs' | 'sigmoid' | 'sign') =>
  (a: Tensor): Tensor => apply(prim, [a], none);
const compareOp = (prim: 'equal' | 'less' | 'greater' | 'lessEqual' | 'greaterEqual') =>
  (a: TensorLike, b: TensorLike): Tensor => apply(prim, lift(a, b, prim), none);

export const add = binaryOp('add');
export const sub = binaryOp('sub');
export const mul = binaryOp('mul');
export const div = binaryOp('div');
export const pow = binaryOp('pow');
export const maximum = binaryOp('maximum');
export const minimum = binaryOp('minimum');
export const neg = unaryOp('neg');
export const exp = unaryOp('exp');
export const log = unaryOp('log');
export const sqrt = unaryOp('sqrt');
export const tanh = unaryOp('tanh');
export const erf = unaryOp('erf');
export const abs = unaryOp('abs');
export const sigmoid = unaryOp('sigmoid');
export const sign = unaryOp('sign');
/** x's value with no gradient flowing back through it (torch's `detach`). */
export const stopGradient = (a: Tensor): Tensor => apply('stopGradient', [a], none);
export const equal = compareOp('equal');
export const less = compareOp('less');
export const greater = compareOp('greater');
export const lessEqual = compareOp('lessEqual');
export const greaterEqual = compareOp('greaterEqual');

export function cast(a: Tensor, to: DType): Tensor {
  return a.dtype === to ? a : apply('cast', [a], { to });
}

/**
 * Selects `a` where `cond` holds, else `b`. Numbers are lifted to the dtype of the tensor
 * operand, or to `dtype` when both branches are numbers.
 */
export function where(cond: Tensor, a: TensorLike, b: TensorLike, dtype: DType = 'float32'): Tensor {
  const g = cond.graph;
  const ref = a instanceof Tensor ? a.dtype : b instanceof Tensor ? b.dtype : dtype;
  const ta = a instanceof Tensor ? a : g.scalar(a, ref);
  const tb = b instanceof Tensor ? b : g.scalar(b, ref);
  return apply('where', [cond, ta, tb], none);
}

export const relu = (a: Tensor): Tensor => maximum(a, 0);
