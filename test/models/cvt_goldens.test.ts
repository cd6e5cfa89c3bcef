/**
 * CvT against PyTorch (scripts/make_cvt_goldens.py: scripts/cvt_ref.py in Hugging Face's
 * CvtForImageClassification layout): eval logits from perturbed running statistics; training
 * mode (batch statistics) logits, loss, every parameter gradient ≤ 1e-4 relative and every
 * BatchNorm buffer after the step, with and without HF-placed drop path; cvt_13's keys, parameter
 * count and logits; HF directories through loadCheckpoint.
 */
import { describe, expect, it } from 'vitest';
import { Cvt, cvtConfigFromHf, type CvtConfig } from '../../src/models/cvt.js';
import { createModel } from '../../src/models/registry.js';
import type { ImageModel } from '../../src/models/model.js';
import { tracedBufferUpdates } from '../../src/nn/module.js';
import { compile } from '../../src/runtime/compile.js';
import { crossEntropy } from '../../src/ops/index.js';
import { deterministicInput, deterministicValues, readJsonFixture, readTensorFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';

const meta = readJsonFixture('cvt_goldens.json');
const tensors = readTensorFixture('cvt_goldens.safetensors');
const golden = (name: string) => tensors.get(name) ?? (() => { throw new Error(`fixture has no tensor ${name}`); })();

const fromPy = (c: Record<string, any>, imgSize: number): Partial<CvtConfig> => ({ ...cvtConfigFromHf(c), imgSize, dropPathRate: 0 });

/** make_cvt_goldens.py's weights: deterministic values, norm weights 1 + v, perturbed BatchNorm statistics. */
function perturbed<M extends ImageModel>(model: M): M {
  for (const [k, p] of model.namedState()) {
    const v = deterministicValues(k, p.size);
    if (/(normalization|layernorm(_before|_after)?)\.weight$/.test(k)) p.data = v.map((x) => 1 + x);
    else if (k.endsWith('running_mean')) p.data = v;
    else if (k.endsWith('running_var')) p.data = v.map((x) => 1 + 4 * Math.abs(x));
    else if (k.endsWith('num_batches_tracked')) p.data = Float32Array.of(3);
    else p.data = v;
  }
  return model;
}

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

async function logitsOf(model: ImageModel, shape: number[]): Promise<Float32Array> {
  const [, c, h, w] = shape as [number, number, number, number];
  const exe = await compile((x) => model.forward(x).logits, [{ name: 'x', shape: ['batch', c, h, w] }]);
  const out = (await exe.run({ x: deterministicInput(shape.reduce((a, b) => a * b, 1)) })).output!.data as Float32Array;
  await exe.dispose();
  return out;
}

const small = () => perturbed(new Cvt(fromPy(meta.small.config, meta.small.img_size)));

describe('CvT against PyTorch', () => {
  it("small: HF's keys, parameter count and eval logits from the running statistics", async () => {
    const model = small();
    expect(Object.keys(model.stateDict())).toEqual(meta.small.keys);
    expect(model.numParams()).toBe(meta.small.num_params);
    expect(maxAbsDiff(await logitsOf(model, meta.train.input_shape), golden('small.eval_logits').data)).toBeLessThanOrEqual(1e-4);
  });

  for (const name of ['train', 'drop']) {
    it(`${name}: training-mode logits, loss, every parameter gradient and the updated BatchNorm buffers`, async () => {
      const c = meta[name];
      const model = small();
      const keys = model.namedParameters().map(([k]) => k);
      expect(keys).toEqual(c.param_keys);
      const [b, ch, h, w] = c.input_shape as number[];
      const classes = meta.small.config.num_labels as number;
      const layers = (meta.small.config.depth as number[]).reduce((a, x) => a + x, 0);
      let updated: string[] = [];
      const exe = await compile((x, y, dropPath) => {
        const { logits } = model.forward(x, { train: true, noise: name === 'drop' ? { drop_path: dropPath! } : undefined });
        const found = tracedBufferUpdates(x.graph);
        updated = [...found.keys()];
        return { logits, loss: crossEntropy(logits, y), ...Object.fromEntries([...found].map(([k, t]) => [`buffer/${k}`, t])) };
      }, [{ name: 'x', shape: ['batch', ch, h, w] }, { name: 'y', shape: ['batch', classes] }, ...(name === 'drop' ? [{ name: 'drop_path', shape: ['batch', 2 * layers] }] : [])],
      { grad: { wrt: [...keys, 'x'] } });
      expect(updated.sort()).toEqual([...c.buffer_keys].sort());
      const targets = new Float32Array(b! * classes);
      (c.labels as number[]).forEach((l, i) => { targets[i * classes + l] = 1; });
      const feeds: Record<string, Float32Array> = { x: deterministicInput(b! * ch! * h! * w!), y: targets };
      if (name === 'drop') feeds.drop_path = golden('drop.drop_path').data;
      const out = await exe.run(feeds);
      await exe.dispose();
      expect(maxAbsDiff(out.logits!.data as Float32Array, golden(`${name}.logits`).data)).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(Number(out.loss!.data[0]) - c.loss)).toBeLessThanOrEqual(1e-5);
      for (const k of keys) {
        const [ours, theirs] = [out[`grad/${k}`]!.data as Float32Array, golden(`${name}.grad.${k}`).data];
        // softmax over the keys ignores a shift shared by all of them, so a key bias's gradient is
        // exactly 0: both sides hold rounding noise (≈ 1e-10), compared absolutely
        if (k.endsWith('projection_key.bias')) expect(maxAbsDiff(ours, theirs), k).toBeLessThanOrEqual(1e-8);
        else expect(relError(ours, theirs), k).toBeLessThanOrEqual(1e-4);
      }
      expect(relError(out['grad/x']!.data as Float32Array, golden(`${name}.grad_input`).data)).toBeLessThanOrEqual(1e-4);
      for (const k of c.buffer_keys as string[]) expect(relError(out[`buffer/${k}`]!.data as Float32Array, golden(`${name}.buffer.${k}`).data), k).toBeLessThanOrEqual(1e-5);
    });
  }

  it("cvt_13: HF's keys, 19,997,480 parameters and matching logits", async () => {
    const c = meta.cvt13;
    const model = perturbed(createModel('cvt_13'));
    expect(Object.keys(model.stateDict())).toEqual(c.keys);
    expect(model.numParams()).toBe(c.num_params);
    expect(maxAbsDiff(await logitsOf(model, c.input_shape), golden('cvt13.logits').data)).toBeLessThanOrEqual(1e-4);
  }, 180_000);
});
