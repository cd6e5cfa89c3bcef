/**
 * Emitted ONNX for a few small graphs, as readable text. A refactor that changes nothing shows
 * an empty diff here; one that changes emission shows exactly which nodes moved.
 */
import { describe, expect, it } from 'vitest';
import { emitModel } from '../../src/onnx/emit.js';
import { dumpModel } from '../../src/onnx/dump.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { trace, withGradients } from '../../src/runtime/compile.js';
import * as ops from '../../src/ops/index.js';
import { Attention } from '../../src/nn/transformer.js';
import { Random } from '../../src/random.js';

const dump = (t: ReturnType<typeof trace>, opts = {}) => dumpModel(decodeModel(emitModel(t.graph, t.outputs, opts).bytes));

describe('emitted ONNX', () => {
  it('linear + softmax cross-entropy training step', async () => {
    const w = new Float32Array(12);
    const t = withGradients(trace((x, y) => ({
      loss: ops.crossEntropy(ops.matmul(x, x.graph.param('w', w, [4, 3])), y, { smoothing: 0.1 }),
    }), [{ name: 'x', shape: ['batch', 4] }, { name: 'y', shape: ['batch'], dtype: 'int64' }]), { wrt: 'params' });
    await expect(dump(t)).toMatchFileSnapshot('__snapshots__/linear-ce-step.txt');
  });

  it('attention forward with module scopes and batch-aware reshapes', async () => {
    const attn = new Attention(8, 2, new Random(0));
    const t = trace((x) => attn.forward(x), [{ name: 'x', shape: ['batch', 3, 8] }]);
    await expect(dump(t, { params: 'initializers' }).replace(/^ {2}init .*\n/gm, '')).toMatchFileSnapshot('__snapshots__/attention-forward.txt');
  });

  it('mean over the batch axis reads the batch size at run time', async () => {
    const t = withGradients(trace((x) => ({ loss: ops.mean(ops.mul(x, x)) }), [{ name: 'x', shape: ['batch', 2] }]), { wrt: ['x'] });
    await expect(dump(t)).toMatchFileSnapshot('__snapshots__/mean-over-batch-grad.txt');
  });
});
