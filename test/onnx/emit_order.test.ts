/**
 * The order emitModel writes a gradient graph in, which decides ORT's execution order (see
 * emissionOrder in src/onnx/emit.ts): each parameter's private gradient ops come after the
 * shared ones, the last layer's last, so ORT takes each weight gradient as soon as its cotangent
 * exists instead of leaving all but the first layer's for the end.
 */
import { describe, expect, it } from 'vitest';
import { emitModel } from '../../src/onnx/emit.js';
import { trace, withGradients } from '../../src/runtime/compile.js';
import * as ops from '../../src/ops/index.js';

function threeLayerStep() {
  return withGradients(trace((x) => {
    let h = x;
    for (let i = 0; i < 3; i++) h = ops.gelu(ops.matmul(h, x.graph.param(`w${i}`, new Float32Array(16).fill(0.1), [4, 4])));
    return { loss: ops.mean(h) };
  }, [{ name: 'x', shape: ['batch', 4] }]), { wrt: 'params' });
}

describe('emission order of a gradient graph', () => {
  const t = threeLayerStep();
  const nodes = emitModel(t.graph, t.outputs).model.graph!.node!;
  const indexOf = (output: string) => nodes.findIndex((n) => n.output?.includes(output));
  // grad/wi = Identity(dW_i): the op producing dW_i is its input
  const producer = (grad: string) => indexOf(nodes[indexOf(grad)]!.input![0]!);

  it('writes the weight gradients in reverse trace order: the first layer first, the last layer last', () => {
    const at = ['grad/w0', 'grad/w1', 'grad/w2'].map(producer);
    expect(at.every((i) => i >= 0)).toBe(true);
    expect(at[0]).toBeLessThan(at[1]!);
    expect(at[1]).toBeLessThan(at[2]!);
  });

  it('keeps a single-output graph in trace order', () => {
    const f = trace((x) => ops.gelu(ops.matmul(x, x.graph.param('w', new Float32Array(4), [2, 2]))), [{ name: 'x', shape: [1, 2] }]);
    const types = emitModel(f.graph, f.outputs).model.graph!.node!.map((n) => n.opType);
    expect(types[0]).toBe('MatMul');
    expect(types[types.length - 1]).toBe('Identity');
  });
});
