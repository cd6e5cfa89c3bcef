/**
 * Every emitted model passes onnx.checker (Debian python3-onnx 1.12, installed by .ci/run) with
 * full_check, i.e. including ONNX shape inference: each gradient-table row's forward+backward
 * graph, a training step, and an inference model with baked-in weights.
 */
import { describe, expect, it } from 'vitest';
import { checkOnnxModels } from '../helpers/onnx_checker.js';
import { emitModel } from '../../src/onnx/emit.js';
import { trace, withGradients } from '../../src/runtime/compile.js';
import { Block } from '../../src/nn/transformer.js';
import { Random } from '../../src/random.js';
import * as ops from '../../src/ops/index.js';
import { buildRow, rows } from '../ops/rows.js';

function blockStep() {
  const block = new Block(12, 3, new Random(1), { mlpRatio: 4 });
  const traced = trace((x, y) => ({ loss: ops.crossEntropy(ops.mean(block.forward(x), 1), y) }), [
    { name: 'x', shape: ['batch', 5, 12] },
    { name: 'y', shape: ['batch'], dtype: 'int64' },
  ]);
  return withGradients(traced, { wrt: 'params' });
}

describe('onnx.checker', () => {
  it('accepts every emitted model', () => {
    const models: [string, Uint8Array][] = rows.map((row, i) => {
      const { traced } = buildRow(row);
      return [`row${i}`, emitModel(traced.graph, traced.outputs).bytes];
    });
    const step = blockStep();
    models.push(['block-train-step', emitModel(step.graph, step.outputs).bytes]);
    models.push(['block-inference', emitModel(step.graph, { loss: step.outputs.loss! }, { params: 'initializers' }).bytes]);
    const report = checkOnnxModels(models);
    expect(report).toBe('ok');
  });
});
