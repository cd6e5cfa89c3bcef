/**
 * grad() recomputes the output of a geluRecomputedInBackward for the backward pass instead of keeping
 * it: the layer after the GELU reads a recomputation, so only the GELU's input is saved.
 */
import { describe, expect, it } from 'vitest';
import { compile, trace, withGradients } from '../../src/runtime/compile.js';
import type { Tensor } from '../../src/ir/tensor.js';
import * as ops from '../../src/ops/index.js';
import { Random } from '../../src/random.js';

const rng = new Random(3);
const w1 = Float32Array.from({ length: 6 * 8 }, () => rng.normal() * 0.5);
const w2 = Float32Array.from({ length: 8 * 3 }, () => rng.normal() * 0.5);
const x = Float32Array.from({ length: 5 * 6 }, () => rng.normal());

// an MLP whose second matmul reads the GELU through a reshape, as Linear does
const mlp = (act: (t: Tensor) => Tensor) => (input: Tensor) => {
  const g = input.graph;
  const h = act(ops.matmul(input, g.param('w1', w1, [6, 8]))); // [B, 8]
  const y = ops.matmul(ops.reshape(h, [-1, 8]), g.param('w2', w2, [8, 3]));
  return { loss: ops.mean(ops.mul(y, y)) };
};

describe('GELU recomputation in the backward pass', () => {
  it('saves only the GELU input: nothing after the loss reads the forward GELU output', () => {
    const t = trace(mlp(ops.geluRecomputedInBackward), [{ name: 'x', shape: ['batch', 6] }]);
    const lossId = t.outputs.loss!.id;
    const withGrads = withGradients(t, { wrt: 'params' });
    const nodes = withGrads.graph.nodes;
    const forwardGelu = nodes.find((n) => n.kind === 'op' && n.prim === 'gelu' && n.id < lossId)!;
    const geluViews = new Set([forwardGelu.id]);
    for (const n of nodes) if (n.kind === 'op' && n.prim === 'reshape' && geluViews.has(n.inputs[0]!) && n.id < lossId) geluViews.add(n.id);
    const backwardReaders = nodes.filter((n) => n.kind === 'op' && n.id > lossId && n.inputs.some((i) => geluViews.has(i)));
    expect(backwardReaders).toEqual([]);
    expect(nodes.some((n) => n.kind === 'op' && n.prim === 'gelu' && n.id > lossId)).toBe(true);
  });

  it('gives the gradients of the GELU written out from primitives', async () => {
    const spec = [{ name: 'x', shape: ['batch', 6] as const }];
    const fused = await compile(mlp(ops.geluRecomputedInBackward), spec, { grad: { wrt: 'params' }, threads: 1 });
    const decomposed = await compile(mlp(ops.geluDecomposed), spec, { grad: { wrt: 'params' }, threads: 1 });
    const [a, b] = [await fused.run({ x }), await decomposed.run({ x })];
    for (const name of ['loss', 'grad/w1', 'grad/w2']) {
      const [u, v] = [a[name]!.data as Float32Array, b[name]!.data as Float32Array];
      expect(u.length).toBe(v.length);
      const scale = Math.max(...Array.from(v, Math.abs));
      expect(scale).toBeGreaterThan(0);
      u.forEach((value, i) => expect(Math.abs(value - v[i]!)).toBeLessThan(1e-5 * scale + 1e-7));
    }
    await fused.dispose();
    await decomposed.dispose();
  });
});
