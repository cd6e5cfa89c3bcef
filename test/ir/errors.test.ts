/** Bad input raises one clear error naming the op, the shapes and the module path. */
import { describe, expect, it } from 'vitest';
import { Graph } from '../../src/ir/graph.js';
import { BATCH } from '../../src/ir/shape.js';
import * as ops from '../../src/ops/index.js';
import { grad } from '../../src/autodiff/grad.js';
import { compile } from '../../src/runtime/compile.js';

describe('shape and dtype errors', () => {
  it('names the op and both shapes on a broadcast mismatch', () => {
    const g = new Graph();
    const a = g.input('a', [2, 3]);
    const b = g.input('b', [4]);
    expect(() => ops.add(a, b)).toThrow('add: shapes [2, 3] and [4] do not broadcast; inputs: float32[2, 3], float32[4]');
  });

  it('names the module path when the error happens inside a module', () => {
    const g = new Graph();
    const x = g.input('x', [BATCH, 5, 12]);
    const w = g.input('w', [10, 36]);
    expect(() => g.withScope('blocks', () => g.withScope('3', () => g.withScope('attn', () => ops.matmul(x, w)))))
      .toThrow('matmul (in blocks.3.attn): inner dimensions differ: 12 vs 10; inputs: float32[B, 5, 12], float32[10, 36]');
  });

  it('rejects mixed dtypes', () => {
    const g = new Graph();
    const a = g.input('a', [3]);
    const b = g.input('b', [3], 'int64');
    expect(() => ops.mul(a, b)).toThrow('mul: dtype mismatch: float32 vs int64');
  });

  it('rejects a bad reshape with both shapes', () => {
    const g = new Graph();
    const a = g.input('a', [BATCH, 6]);
    expect(() => ops.reshape(a, [BATCH, 4])).toThrow('reshape: cannot reshape [B, 6] to [B, 4]');
  });

  it('rejects float indices in gather and a non-bool where condition', () => {
    const g = new Graph();
    const a = g.input('a', [3, 4]);
    expect(() => ops.gather(a, a, 0)).toThrow('gather: indices must be int64 or int32, got float32');
    expect(() => ops.where(a, a, 0)).toThrow('where: condition must be bool, got float32');
  });

  it('rejects a conv whose channels do not match the weight', () => {
    const g = new Graph();
    const x = g.input('x', [BATCH, 3, 8, 8]);
    const w = g.input('w', [4, 2, 3, 3]);
    expect(() => ops.conv2d(x, w)).toThrow('conv2d: input has 3 channels but weight expects 2 x 1 groups');
  });
});

describe('gradient errors', () => {
  it('asks for a seed when the loss is not a scalar', () => {
    const g = new Graph();
    const x = g.input('x', [BATCH, 10]);
    expect(() => grad(ops.mul(x, 2), [x])).toThrow('grad: the loss must be a scalar, got shape [B, 10]; reduce it (e.g. mean) or pass a seed of that shape');
  });

  it('accepts a seed of the loss shape and rejects one of another shape', () => {
    const g = new Graph();
    const x = g.input('x', [BATCH, 10]);
    const y = ops.mul(x, 2);
    expect(grad(y, [x], g.input('s', [BATCH, 10]))[0]!.shape).toEqual(x.shape);
    expect(() => grad(y, [x], g.input('s2', [BATCH, 3]))).toThrow('grad: seed shape [B, 3] differs from loss shape [B, 10]');
  });

  it('names the non-differentiable op that blocks the gradient', () => {
    const g = new Graph();
    const x = g.input('x', [4, 10]);
    const loss = g.withScope('head', () => ops.sum(ops.cast(ops.argmax(x, -1), 'float32')));
    expect(() => grad(loss, [x])).toThrow('grad: the loss depends on "x" float32[4, 10] only through argmax (in head), which is not differentiable');
  });

  it('refuses to differentiate through sign', () => {
    const g = new Graph();
    const x = g.input('x', [4]);
    expect(() => grad(ops.sum(ops.sign(x)), [x])).toThrow('grad: sign is not differentiable, but it lies on the gradient path');
  });

  it('gives zeros for a parameter the loss does not use', async () => {
    const exe = await compile((x) => {
      const unused = x.graph.param('unused', new Float32Array([1, 2, 3]), [3]);
      const [gx, gu] = grad(ops.sum(ops.mul(x, x)), [x, unused]);
      return { gx: gx!, gu: gu! };
    }, [{ name: 'x', shape: [2] }]);
    const out = await exe.run({ x: [3, -1] });
    expect(Array.from(out.gx!.data as Float32Array)).toEqual([6, -2]);
    expect(Array.from(out.gu!.data as Float32Array)).toEqual([0, 0, 0]);
    await exe.dispose();
  });
});
