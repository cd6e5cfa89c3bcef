/**
 * CvT against PyTorch (scripts/make_cvt_goldens.py: scripts/cvt_ref.py in Hugging Face's
 * CvtForImageClassification layout): eval logits from perturbed running statistics; training
 * mode (batch statistics) logits, loss, every parameter gradient ≤ 1e-4 relative and every
 * BatchNorm buffer after the step, with and without HF-placed drop path; cvt_13's keys, parameter
 * count and logits; HF directories through loadCheckpoint.
 *
 * Measured (ORT, 2 threads): eval logits 2.4e-7; training logits 6.0e-7, loss 1.2e-7, gradients
 * ≤ 1.6e-5 relative (5.0e-5 with drop path), input gradient 1.1e-5, BatchNorm buffers 3.5e-7;
 * cvt_13 logits 1.9e-6.
 */
import { describe, expect, it } from 'vitest';
import { Cvt, cvtConfigFromHf, type CvtConfig } from '../../src/models/cvt.js';
import { createModel } from '../../src/models/registry.js';
import type { ImageModel } from '../../src/models/model.js';
import { tracedBufferUpdates } from '../../src/nn/module.js';
import { compile, type InputSpec } from '../../src/runtime/compile.js';
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
      }, [{ name: 'x', shape: ['batch', ch!, h!, w!] }, { name: 'y', shape: ['batch', classes] }, ...(name === 'drop' ? [{ name: 'drop_path', shape: ['batch', 2 * layers] }] : [])] as InputSpec[],
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

describe('CvT checkpoints in the files users hold', () => {
  const withDir = async (fn: (dir: string, fs: typeof import('node:fs'), join: (...p: string[]) => string) => Promise<void>) => {
    const fs = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = fs.mkdtempSync(join(tmpdir(), 'tessera-cvt-'));
    try {
      await fn(dir, fs, join);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const fixture = (name: string) => new URL(`../fixtures/${name}`, import.meta.url);
  const preprocessor = { image_processor_type: 'ConvNextImageProcessor', crop_pct: 0.875, resample: 3, image_mean: [0.485, 0.456, 0.406], image_std: [0.229, 0.224, 0.225], size: { shortest_edge: 20 } };

  it("a Hugging Face directory (config.json + torch.save'd pytorch_model.bin with int64 num_batches_tracked) loads with its config, labels and preprocessing", async () => {
    const { loadCheckpoint } = await import('../../src/checkpoint/checkpoint.js');
    await withDir(async (dir, fs, join) => {
      fs.copyFileSync(fixture('cvt_goldens.hf_pytorch_model.bin'), join(dir, 'pytorch_model.bin'));
      fs.copyFileSync(fixture('cvt_goldens.hf_config.json'), join(dir, 'config.json'));
      fs.writeFileSync(join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessor));
      const { model, meta: m } = loadCheckpoint(dir);
      expect(model.family).toBe('cvt');
      expect(model.config).toMatchObject({ embedDim: [16, 24, 32], numHeads: [1, 2, 4], depth: [1, 2, 3], patchSizes: [5, 3, 3], qkvBias: [true, false, true], numClasses: 7, imgSize: 20, dropPathRate: 0.1 });
      expect(m.classNames).toEqual(Array.from({ length: 7 }, (_, i) => `class_${i}`));
      expect(m).toMatchObject({ interpolation: 'bicubic', cropPct: 0.875, inputSize: [3, 20, 20], mean: [0.485, 0.456, 0.406] });
      expect(Array.from(model.stateDict()['cvt.encoder.stages.1.layers.1.attention.attention.convolution_projection_key.convolution_projection.normalization.num_batches_tracked']!.data)).toEqual([3]);
      expect(maxAbsDiff(await logitsOf(model, meta.train.input_shape), golden('small.eval_logits').data)).toBeLessThanOrEqual(1e-4);
    });
  });

  it('model.safetensors with I64 num_batches_tracked loads the same; a cvt-13 directory is named cvt_13', async () => {
    const { writeSafetensors } = await import('../../src/checkpoint/safetensors.js');
    const { loadCheckpoint } = await import('../../src/checkpoint/checkpoint.js');
    await withDir(async (dir, fs, join) => {
      const model = small();
      const tensors = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, k.endsWith('num_batches_tracked')
        ? { shape: t.shape, data: BigInt64Array.of(BigInt(t.data[0]!)) } : { shape: t.shape, data: t.data }]));
      writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
      fs.copyFileSync(fixture('cvt_goldens.hf_config.json'), join(dir, 'config.json'));
      const loaded = loadCheckpoint(dir);
      expect(maxAbsDiff(await logitsOf(loaded.model, meta.train.input_shape), golden('small.eval_logits').data)).toBeLessThanOrEqual(1e-4);
      // the bare file: shapes alone do not give this unregistered architecture's heads
      expect(() => loadCheckpoint(join(dir, 'model.safetensors'))).toThrow(/width 32 is not divisible by 6 heads \(heads, strides and paddings are not in the weights/);
      const big = createModel('cvt_13', { numClasses: 3 });
      fs.rmSync(join(dir, 'config.json'));
      writeSafetensors(join(dir, 'model.safetensors'), Object.fromEntries(Object.entries(big.stateDict()).map(([k, t]) => [k, { shape: t.shape, data: t.data }])), { format: 'pt' });
      const named = loadCheckpoint(dir);
      expect(named.meta.model).toBe('cvt_13');
      expect(named.model.numParams()).toBe(big.numParams());
    });
  }, 60_000);

  it('wrong shapes and missing keys fail with the list', async () => {
    const { writeSafetensors } = await import('../../src/checkpoint/safetensors.js');
    const { loadCheckpoint } = await import('../../src/checkpoint/checkpoint.js');
    await withDir(async (dir, fs, join) => {
      const sd = small().stateDict();
      delete sd['layernorm.bias'];
      delete sd['cvt.encoder.stages.0.layers.0.attention.attention.convolution_projection_value.convolution_projection.normalization.running_var'];
      sd['classifier.bias'] = { data: new Float32Array(3), shape: [3] };
      writeSafetensors(join(dir, 'model.safetensors'), Object.fromEntries(Object.entries(sd).map(([k, t]) => [k, { shape: t.shape, data: t.data }])), { format: 'pt' });
      fs.copyFileSync(fixture('cvt_goldens.hf_config.json'), join(dir, 'config.json'));
      expect(() => loadCheckpoint(dir)).toThrow(/shape mismatch for classifier\.bias: checkpoint \[3\] vs model \[7\].*missing keys: .*convolution_projection_value\.convolution_projection\.normalization\.running_var, layernorm\.bias/);
    });
  });
});

describe('CvT details', () => {
  it("HF's drop-path rates: linspace(0, rate, depth) at the stage's index for every layer of the stage", () => {
    expect(new Cvt({ ...createModel('cvt_13').config }).layerDropPathRates().slice(3)).toEqual(Array(10).fill(0.1 * 2 / 9));
    expect(createModel('cvt_13').noiseInputs().map((n) => [n.name, n.perSample])).toEqual([['drop_path', 26]]);
  });

  it('layer grouping: stage 0 embedding 0, layers 1…13, later embeddings and the class token with their stage\'s first layer, head 14', () => {
    const model = createModel('cvt_13');
    const g = model.layerGrouping();
    expect(g.blocks).toBe(13);
    expect(g.layerOf('cvt.encoder.stages.0.embedding.convolution_embeddings.projection.weight')).toBe(0);
    expect(g.layerOf('cvt.encoder.stages.0.layers.0.output.dense.weight')).toBe(1);
    expect(g.layerOf('cvt.encoder.stages.1.embedding.convolution_embeddings.normalization.bias')).toBe(2);
    expect(g.layerOf('cvt.encoder.stages.2.cls_token')).toBe(4);
    expect(g.layerOf('cvt.encoder.stages.2.layers.9.layernorm_after.weight')).toBe(13);
    expect(g.layerOf('layernorm.weight')).toBe(14);
    expect(g.layerOf('classifier.bias')).toBe(14);
    expect(model.headKeys()).toEqual(['classifier.weight', 'classifier.bias']);
    expect(model.tokenGrid()).toBeUndefined();
  });
});
