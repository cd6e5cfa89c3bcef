/**
 * grad() recomputes the output of a geluRecomputedInBackward (or siluRecomputedInBackward) for the
 * backward pass instead of keeping it: the layer after the activation reads a recomputation, so
 * only the activation's input is saved.
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

const cases = [
  { name: 'GELU', prim: 'gelu', marked: ops.geluRecomputedInBackward, decomposed: ops.geluDecomposed },
  { name: 'SiLU', prim: 'silu', marked: ops.siluRecomputedInBackward, decomposed: ops.siluDecomposed },
] as const;

describe.each(cases)('$name recomputation in the backward pass', ({ name, prim, marked, decomposed }) => {
  it(`saves only the ${name} input: nothing after the loss reads the forward ${name} output`, () => {
    const t = trace(mlp(marked), [{ name: 'x', shape: ['batch', 6] }]);
    const lossId = t.outputs.loss!.id;
    const withGrads = withGradients(t, { wrt: 'params' });
    const nodes = withGrads.graph.nodes;
    const forward = nodes.find((n) => n.kind === 'op' && n.prim === prim && n.id < lossId)!;
    const views = new Set([forward.id]);
    for (const n of nodes) if (n.kind === 'op' && n.prim === 'reshape' && views.has(n.inputs[0]!) && n.id < lossId) views.add(n.id);
    const backwardReaders = nodes.filter((n) => n.kind === 'op' && n.id > lossId && n.inputs.some((i) => views.has(i)));
    expect(backwardReaders).toEqual([]);
    expect(nodes.some((n) => n.kind === 'op' && n.prim === prim && n.id > lossId)).toBe(true);
  });

  it(`gives the gradients of the ${name} written out from primitives`, async () => {
    const spec = [{ name: 'x', shape: ['batch', 6] as const }];
    const fused = await compile(mlp(marked), spec, { grad: { wrt: 'params' }, threads: 1 });
    const reference = await compile(mlp(decomposed), spec, { grad: { wrt: 'params' }, threads: 1 });
    const [a, b] = [await fused.run({ x }), await reference.run({ x })];
    for (const output of ['loss', 'grad/w1', 'grad/w2']) {
      const [u, v] = [a[output]!.data as Float32Array, b[output]!.data as Float32Array];
      expect(u.length).toBe(v.length);
      const scale = Math.max(...Array.from(v, Math.abs));
      expect(scale).toBeGreaterThan(0);
      u.forEach((value, i) => expect(Math.abs(value - v[i]!)).toBeLessThan(1e-5 * scale + 1e-7));
    }
    await fused.dispose();
    await reference.dispose();
  });
});
