/**
 * Every emitted model passes onnx.checker (Debian python3-onnx 1.12, installed by .ci/run) with
 * full_check, i.e. including ONNX shape inference: each gradient-table row's forward+backward
 * graph, a training step, and an inference model with baked-in weights.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { emitModel } from '../../src/onnx/emit.js';
import { trace, withGradients } from '../../src/runtime/compile.js';
import { Block } from '../../src/nn/transformer.js';
import { Random } from '../../src/random.js';
import * as ops from '../../src/ops/index.js';
import { buildRow, rows } from '../ops/rows.js';

const CHECK = `
import sys, onnx
bad = []
for path in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
    except Exception as e:
        bad.append(f"{path}: {e}")
print("\\n".join(bad) if bad else "ok")
`;

const dir = mkdtempSync(join(tmpdir(), 'tessera-checker-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

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
    const paths = models.map(([name, bytes]) => {
      const path = join(dir, `${name}.onnx`);
      writeFileSync(path, bytes);
      return path;
    });
    const report = execFileSync('/usr/bin/python3', ['-c', CHECK, ...paths], { encoding: 'utf8' }).trim();
    expect(report).toBe('ok');
  });
});
