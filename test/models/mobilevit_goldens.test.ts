/**
 * MobileViT against PyTorch (scripts/make_mobilevit_goldens.py: scripts/mobilevit_ref.py in timm's
 * layout, itself checked against timm's ByobNet): for v1 at whole patches, v1 with resized maps
 * and v2, random perturbed weights and BatchNorm statistics: eval logits ≤ 1e-4 absolute; in
 * training mode with a drop-path input, logits, loss, every parameter gradient ≤ 1e-4 relative
 * (those that are 0 in exact arithmetic ≤ 1e-6 absolute) and every updated buffer;
 * mobilevit_xxs's keys (with num_batches_tracked) and logits at 256.
 */
import { describe, expect, it } from 'vitest';
import { MobileVit, inferMobilevitConfig, type MobileVitConfig } from '../../src/models/mobilevit.js';
import { createModel } from '../../src/models/registry.js';
import { tracedBufferUpdates, type StateDict } from '../../src/nn/module.js';
import { compile } from '../../src/runtime/compile.js';
import { crossEntropy } from '../../src/ops/index.js';
import { deterministicInput, readJsonFixture, readTensorFixture } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';

const meta = readJsonFixture('mobilevit_goldens.json');
const tensors = readTensorFixture('mobilevit_goldens.safetensors');
const golden = (name: string) => tensors.get(name) ?? (() => { throw new Error(`fixture has no tensor ${name}`); })();

const fromPy = (c: Record<string, any>): Partial<MobileVitConfig> => ({
  version: c.version, imgSize: c.img_size, inChans: c.in_chans, numClasses: c.num_classes, stemChs: c.stem_chs, channels: c.channels,
  strides: c.strides, depths: c.depths, bottleRatios: c.bottle_ratios, transformerDepths: c.transformer_depths, transformerDims: c.transformer_dims,
  transformerRatio: c.transformer_ratio, patchSize: c.patch_size, numHeads: c.num_heads, mlpRatio: c.mlp_ratio, numFeatures: c.num_features,
});

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

/** scripts/make_mobilevit_goldens.py's full_size_values: sin(0.7 i + 0.013 h(key)) scaled by the tensor's kind. */
function fullSizeValues(key: string, shape: readonly number[]): Float32Array {
  let h = 0;
  for (let j = 0; j < key.length; j++) h += (j + 1) * key.charCodeAt(j);
  h %= 10007;
  const n = shape.reduce((a, b) => a * b, 1);
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, (_, i) => {
    const base = Math.sin(0.7 * i + 0.013 * h);
    if (key.endsWith('num_batches_tracked')) return 0;
    if (key.endsWith('running_var')) return 1 + 0.3 * base;
    if (key.endsWith('running_mean')) return 0.1 * base;
    if (shape.length === 1 && key.endsWith('.weight')) return 1 + 0.1 * base;
    if (key.endsWith('.bias')) return 0.02 * base;
    return base * Math.sqrt(3 / fanIn);
  });
}

describe('MobileViT against PyTorch', () => {
  for (const name of ['v1', 'v1_odd', 'v2']) {
    it(`${name}: keys, eval logits; training-mode logits, loss, gradients and updated BatchNorm statistics`, async () => {
      const c = meta[name];
      const model = new MobileVit(fromPy(c.config));
      expect(model.namedState().map(([k]) => k)).toEqual(c.keys);
      expect(model.numParams()).toBe(c.num_params);
      const state: StateDict = Object.fromEntries((c.keys as string[]).map((k) => [k, golden(`${name}.state.${k}`)]));
      model.loadStateDict(state);
      const [b, ch, h, w] = c.input_shape as [number, number, number, number];
      const x = deterministicInput(b * ch * h * w);

      const evalExe = await compile((xs) => model.forward(xs).logits, [{ name: 'x', shape: ['batch', ch, h, w] }]);
      const evalLogits = (await evalExe.run({ x })).output!.data as Float32Array;
      await evalExe.dispose();
      expect(maxAbsDiff(evalLogits, golden(`${name}.eval_logits`).data)).toBeLessThanOrEqual(1e-4);

      const classes = c.config.num_classes;
      const keys = model.namedParameters().map(([k]) => k);
      expect(keys).toEqual(c.params);
      const exe = await compile((xs, y, dropPath) => {
        const { logits } = model.forward(xs, { train: true, noise: { drop_path: dropPath } });
        const updates = tracedBufferUpdates(xs.graph);
        return { logits, loss: crossEntropy(logits, y), ...Object.fromEntries([...updates].map(([k, t]) => [`buffer/${k}`, t])) };
      }, [{ name: 'x', shape: ['batch', ch, h, w] }, { name: 'y', shape: ['batch', classes] }, { name: 'drop_path', shape: ['batch', c.slots] }],
      { grad: { wrt: [...keys, 'x'] } });
      const targets = new Float32Array(b * classes);
      (c.labels as number[]).forEach((l, i) => { targets[i * classes + l] = 1; });
      const out = await exe.run({ x, y: targets, drop_path: golden(`${name}.drop_path`).data });
      await exe.dispose();
      expect(maxAbsDiff(out.logits!.data as Float32Array, golden(`${name}.train_logits`).data)).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(Number(out.loss!.data[0]) - c.loss)).toBeLessThanOrEqual(1e-5);
      // zero up to rounding, as the generator defines them: below 1e-6 of the largest gradient
      const nullGrads = new Set(c.null_grads as string[]);
      const gradScale = Math.max(...keys.map((k) => maxAbsDiff(golden(`${name}.grad.${k}`).data, new Float32Array(golden(`${name}.grad.${k}`).data.length))));
      for (const k of keys) {
        const ours = out[`grad/${k}`]!.data as Float32Array;
        if (nullGrads.has(k)) expect(maxAbsDiff(ours, golden(`${name}.grad.${k}`).data), k).toBeLessThanOrEqual(1e-6 * gradScale);
        else expect(relError(ours, golden(`${name}.grad.${k}`).data), k).toBeLessThanOrEqual(1e-4);
      }
      expect(relError(out['grad/x']!.data as Float32Array, golden(`${name}.grad_input`).data)).toBeLessThanOrEqual(1e-4);
      expect(Object.keys(out).filter((k) => k.startsWith('buffer/')).map((k) => k.slice('buffer/'.length)).sort()).toEqual([...c.buffers].sort());
      for (const k of c.buffers as string[]) {
        expect(maxAbsDiff(out[`buffer/${k}`]!.data as Float32Array, golden(`${name}.buffer.${k}`).data), k).toBeLessThanOrEqual(1e-5);
      }
    }, 120_000);
  }

  it('mobilevit_xxs: timm keys with num_batches_tracked, 1,272,024 parameters, logits at 256', async () => {
    const c = meta.xxs;
    const model = createModel('mobilevit_xxs');
    expect(model.namedState().map(([k]) => k)).toEqual(c.keys);
    expect(c.keys).toContain('stages.2.1.conv_fusion.bn.num_batches_tracked');
    expect(model.numParams()).toBe(1_272_024);
    for (const [k, p] of model.namedState()) p.data = fullSizeValues(k, p.shape);
    const exe = await compile((x) => model.forward(x).logits, [{ name: 'x', shape: ['batch', 3, 256, 256] }]);
    const out = (await exe.run({ x: deterministicInput(3 * 256 * 256) })).output!.data as Float32Array;
    await exe.dispose();
    expect(maxAbsDiff(out, golden('xxs.logits').data)).toBeLessThanOrEqual(1e-4);
  }, 180_000);
});

describe('MobileViT checkpoints', () => {
  it('reads the architecture back from a timm-layout state dict (v1 and v2)', () => {
    for (const name of ['mobilevit_xs', 'mobilevitv2_100']) {
      const model = createModel(name);
      const sd: StateDict = Object.fromEntries(model.namedState().map(([k, p]) => [k, { data: new Float32Array(0), shape: p.shape }]));
      const inferred = inferMobilevitConfig(sd)!;
      const { channels, depths, transformerDepths, numFeatures, version, stemChs } = model.config;
      expect(inferred).toMatchObject({ channels, depths, transformerDepths, numFeatures, version, stemChs, numClasses: 1000 });
      expect(new MobileVit(inferred).numParams()).toBe(model.numParams());
    }
  });

  it('groups stem, each stages.S.J and final_conv + head as timm\'s group_matcher', () => {
    const g = createModel('mobilevit_xxs').layerGrouping();
    expect(g.blocks).toBe(10);
    expect([g.layerOf('stem.conv.weight'), g.layerOf('stages.0.0.conv1_1x1.conv.weight'), g.layerOf('stages.1.2.conv3_1x1.bn.bias'),
      g.layerOf('stages.4.1.transformer.2.attn.qkv.weight'), g.layerOf('final_conv.conv.weight'), g.layerOf('head.fc.bias')]).toEqual([0, 1, 4, 10, 11, 11]);
    expect(createModel('mobilevit_xxs').tokenGrid()).toBeUndefined();
  });
});

describe('MobileViT checkpoints in the files users hold', () => {
  it('a timm safetensors file with I64 num_batches_tracked loads, its count kept', async () => {
    const { mkdtempSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { writeSafetensors } = await import('../../src/checkpoint/safetensors.js');
    const { loadCheckpoint } = await import('../../src/checkpoint/checkpoint.js');
    const { createModel } = await import('../../src/models/registry.js');
    const dir = mkdtempSync(join(tmpdir(), 'tessera-mvit-'));
    try {
      const model = createModel('mobilevit_xxs');
      const tensors: Record<string, { shape: readonly number[]; data: Float32Array | BigInt64Array }> = {};
      for (const [k, t] of Object.entries(model.stateDict())) {
        tensors[k] = k.endsWith('num_batches_tracked') ? { shape: [], data: BigInt64Array.of(17n) } : { shape: t.shape, data: t.data };
      }
      const file = join(dir, 'model.safetensors');
      writeSafetensors(file, tensors, { format: 'pt' });
      const loaded = loadCheckpoint(file, { model: 'mobilevit_xxs' });
      expect(loaded.model.stateDict()['stem.bn.num_batches_tracked']!.data[0]).toBe(17);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
