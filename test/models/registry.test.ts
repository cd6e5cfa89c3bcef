/**
 * Smoke test over every registered architecture: it builds, emits ONNX that passes the checker,
 * gives the right output shape on a tiny batch without NaN, and every parameter receives a
 * non-zero, finite gradient. Large models run at batch 1.
 */
import { describe, expect, it } from 'vitest';
import { createModel, listModels } from '../../src/models/registry.js';
import { trace, withGradients, compileTraced } from '../../src/runtime/compile.js';
import { emitModel } from '../../src/onnx/emit.js';
import * as ops from '../../src/ops/index.js';
import { checkOnnxModels } from '../helpers/onnx_checker.js';
import { rng } from '../helpers/random.js';

const emitted: [string, Uint8Array][] = [];

describe('every registered model', () => {
  for (const entry of listModels()) {
    it(entry.name, async () => {
      const model = createModel(entry.name);
      const [c, h, w] = model.inputShape;
      const batch = model.numParams() > 30e6 ? 1 : 2;
      const classes = model.config.numClasses;
      const traced = withGradients(trace((x, y) => {
        const { logits } = model.forward(x);
        return { logits, loss: ops.crossEntropy(logits, y) };
      }, [{ name: 'x', shape: ['batch', c, h, w] }, { name: 'y', shape: ['batch'], dtype: 'int64' }]), { wrt: 'params' });
      const onnx = emitModel(traced.graph, traced.outputs);
      emitted.push([entry.name, onnx.bytes]);
      const exe = await compileTraced(traced);
      const rand = rng(7);
      const out = await exe.run({ x: Float32Array.from({ length: batch * c * h * w }, () => rand() * 2 - 1), y: Array.from({ length: batch }, (_, i) => i % classes) });
      await exe.dispose();
      expect(out.logits!.shape).toEqual([batch, classes]);
      expect((out.logits!.data as Float32Array).every(Number.isFinite)).toBe(true);
      const params = model.namedParameters();
      expect(params.length).toBe(Object.keys(out).filter((k) => k.startsWith('grad/')).length);
      const noGradient = params.filter(([name]) => {
        const g = out[`grad/${name}`]!.data as Float32Array;
        return !g.every(Number.isFinite) || g.every((v) => v === 0);
      }).map(([name]) => name);
      expect(noGradient).toEqual([]);
    });
  }

  it('emits training graphs that pass onnx.checker', () => {
    expect(emitted.length).toBe(listModels().length);
    expect(checkOnnxModels(emitted)).toBe('ok');
  });
});
