/** compile(): batch-size freedom, session caching, options, feeding and disposal. */
import { describe, expect, it } from 'vitest';
import * as ops from '../../src/ops/index.js';
import { compile } from '../../src/runtime/compile.js';
import { cachedSessionCount } from '../../src/runtime/session.js';
import { physicalCores } from '../../src/runtime/cores.js';
import { decodeModel } from '../../src/onnx/proto.js';

const weight = new Float32Array([1, 2, 3, 4, 5, 6]);

function affine(x: Parameters<typeof ops.matmul>[0]) {
  const w = x.graph.param('w', weight, [3, 2]);
  return ops.add(ops.matmul(x, w), 1);
}

describe('compile', () => {
  it('runs any batch size with one executable', async () => {
    const exe = await compile(affine, [{ name: 'x', shape: ['batch', 3] }]);
    for (const batch of [1, 2, 7]) {
      const x = Float32Array.from({ length: batch * 3 }, (_, i) => i % 3);
      const { output } = await exe.run({ x });
      expect(output!.shape).toEqual([batch, 2]);
      // each row is [0, 1, 2] @ w + 1 = [1·3 + 2·5 + 1, 1·4 + 2·6 + 1]
      for (let r = 0; r < batch; r++) expect(Array.from(output!.data.slice(2 * r, 2 * r + 2) as Float32Array)).toEqual([14, 17]);
    }
    await exe.dispose();
  });

  it('declares a symbolic batch axis in the ONNX model', async () => {
    const exe = await compile(affine, [{ name: 'x', shape: ['batch', 3] }], { params: 'initializers' });
    const g = decodeModel(exe.onnx).graph!;
    expect(g.input!.map((i) => i.name)).toEqual(['x']);
    expect(g.input![0]!.type!.tensorType!.shape!.dim![0]!.dimParam).toBe('batch');
    expect(g.initializer!.some((t) => t.name === 'w')).toBe(true);
    await exe.dispose();
  });

  it('reads parameters from their host arrays on every run', async () => {
    const data = new Float32Array([2]);
    const exe = await compile((x) => ops.mul(x, x.graph.param('scale', data, [1])), [{ name: 'x', shape: [2] }]);
    expect(Array.from((await exe.run({ x: [1, 2] })).output!.data as Float32Array)).toEqual([2, 4]);
    data[0] = 10;
    expect(Array.from((await exe.run({ x: [1, 2] })).output!.data as Float32Array)).toEqual([10, 20]);
    await exe.dispose();
  });

  it('caches sessions by signature and releases them on the last dispose', async () => {
    const before = cachedSessionCount();
    const a = await compile(affine, [{ name: 'x', shape: ['batch', 3] }], { threads: 1 });
    const b = await compile(affine, [{ name: 'x', shape: ['batch', 3] }], { threads: 1 });
    expect(cachedSessionCount()).toBe(before + 1);
    const c = await compile(affine, [{ name: 'x', shape: ['batch', 3] }], { threads: 1, graphOptimization: 'basic' });
    expect(cachedSessionCount()).toBe(before + 2);
    await a.dispose();
    expect(cachedSessionCount()).toBe(before + 2);
    await b.dispose();
    await c.dispose();
    expect(cachedSessionCount()).toBe(before);
    await expect(a.run({ x: [1, 2, 3] })).rejects.toThrow('this executable was disposed');
  });

  it('converts plain numbers for int64 inputs', async () => {
    const exe = await compile((y) => ops.oneHot(y, 3), [{ name: 'y', shape: ['batch'], dtype: 'int64' }]);
    const { output } = await exe.run({ y: [2, 0] });
    expect(Array.from(output!.data as Float32Array)).toEqual([0, 0, 1, 1, 0, 0]);
    await exe.dispose();
  });

  it('rejects unknown, missing and misshapen feeds by name', async () => {
    const exe = await compile(affine, [{ name: 'x', shape: ['batch', 3] }]);
    await expect(exe.run({ x: [1, 2, 3], z: [1] })).rejects.toThrow('run: unknown input "z"; inputs are x');
    await expect(exe.run({})).rejects.toThrow('run: missing input "x" (float32[B, 3])');
    await expect(exe.run({ x: [1, 2, 3, 4] })).rejects.toThrow('run: input "x" has 4 values, which is no whole batch of [B, 3]');
    await expect(exe.run({ x: { data: new Float32Array(6), shape: [3, 2] } })).rejects.toThrow('run: input "x" has shape [3, 2], expected [B, 3]');
    await exe.dispose();
  });

  it('rejects an unsupported opset and an unknown execution provider clearly', async () => {
    await expect(compile(affine, [{ name: 'x', shape: [1, 3] }], { opset: 11 })).rejects.toThrow('opset must be an integer from 17 to 21, got 11');
    await expect(compile(affine, [{ name: 'x', shape: [1, 3] }], { executionProvider: 'nosuch' }))
      .rejects.toThrow('ONNX Runtime could not load the model on provider "nosuch"');
  });

  it('defaults to the physical core count', () => {
    expect(physicalCores()).toBeGreaterThanOrEqual(1);
  });
});

describe('opsets', () => {
  it('emits reductions with axes as inputs from opset 18 and gets the same numbers', async () => {
    const fn = (x: Parameters<typeof ops.mean>[0]) => ({ m: ops.mean(x, 1), mx: ops.max(x, 0, true) });
    const x = [1, 5, 3, 2, 4, 9];
    const results = [];
    for (const opset of [17, 18, 21]) {
      const exe = await compile(fn, [{ name: 'x', shape: [2, 3] }], { opset });
      const out = await exe.run({ x });
      results.push([Array.from(out.m!.data as Float32Array), Array.from(out.mx!.data as Float32Array)]);
      await exe.dispose();
    }
    expect(results[0]).toEqual([[3, 5], [2, 5, 9]]);
    expect(results[1]).toEqual(results[0]);
    expect(results[2]).toEqual(results[0]);
  });
});
