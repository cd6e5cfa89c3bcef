/**
 * Swin against PyTorch (scripts/make_swin_goldens.py: scripts/swin_ref.py in timm's layout, itself
 * checked against timm's SwinTransformer to 0 / 8e-7): logits ≤ 1e-4 absolute and every parameter
 * gradient ≤ 1e-4 relative for a shifted-and-clamped config and a padded one; swin_tiny's logits;
 * timm ≤ 0.6 / Microsoft checkpoints remapped on load.
 */
import { describe, expect, it } from 'vitest';
import { SwinTransformer, relativePositionIndex, shiftedWindowMask, swinCheckpointFilter, type SwinConfig } from '../../src/models/swin.js';
import { createModel } from '../../src/models/registry.js';
import type { ImageModel } from '../../src/models/model.js';
import { compile } from '../../src/runtime/compile.js';
import { crossEntropy } from '../../src/ops/index.js';
import type { StateDict } from '../../src/nn/module.js';
import { deterministicInput, readJsonFixture, readTensorFixture, maxAbsDiff, deterministicModel } from '../helpers/fixtures.js';
import { relError } from '../helpers/random.js';

const meta = readJsonFixture('swin_goldens.json');
const tensors = readTensorFixture('swin_goldens.safetensors');
const golden = (name: string) => tensors.get(name) ?? (() => { throw new Error(`fixture has no tensor ${name}`); })();

const fromPy = (c: Record<string, any>): Partial<SwinConfig> => ({
  imgSize: c.img_size, patchSize: c.patch_size, inChans: c.in_chans, numClasses: c.num_classes, embedDim: c.embed_dim,
  depths: c.depths, numHeads: c.num_heads, windowSize: c.window_size, mlpRatio: c.mlp_ratio ?? 4, dropPathRate: 0,
});



async function logitsOf(model: ImageModel, shape: number[]): Promise<Float32Array> {
  const [, c, h, w] = shape as [number, number, number, number];
  const exe = await compile((x) => model.forward(x).logits, [{ name: 'x', shape: ['batch', c, h, w] }]);
  const out = (await exe.run({ x: deterministicInput(shape.reduce((a, b) => a * b, 1)) })).output!.data as Float32Array;
  await exe.dispose();
  return out;
}

describe('Swin against PyTorch', () => {
  for (const name of ['small', 'padded']) {
    it(`${name}: keys, logits, loss and every parameter gradient`, async () => {
      const c = meta[name];
      const model = deterministicModel(new SwinTransformer(fromPy(c.config)));
      expect(model.namedParameters().map(([k]) => k)).toEqual(c.keys);
      expect(model.numParams()).toBe(c.num_params);
      const [b, ch, h, w] = c.input_shape as number[];
      const classes = c.config.num_classes;
      const keys = model.namedParameters().map(([k]) => k);
      const exe = await compile((x, y) => {
        const { logits } = model.forward(x);
        return { logits, loss: crossEntropy(logits, y) };
      }, [{ name: 'x', shape: ['batch', ch, h, w] }, { name: 'y', shape: ['batch', classes] }], { grad: { wrt: [...keys, 'x'] } });
      const targets = new Float32Array(b! * classes);
      (c.labels as number[]).forEach((l, i) => { targets[i * classes + l] = 1; });
      const out = await exe.run({ x: deterministicInput(b! * ch! * h! * w!), y: targets });
      await exe.dispose();
      expect(maxAbsDiff(out.logits!.data as Float32Array, golden(`${name}.logits`).data)).toBeLessThanOrEqual(1e-4);
      expect(Math.abs(Number(out.loss!.data[0]) - c.loss)).toBeLessThanOrEqual(1e-5);
      for (const k of keys) expect(relError(out[`grad/${k}`]!.data as Float32Array, golden(`${name}.grad.${k}`).data), k).toBeLessThanOrEqual(1e-4);
      expect(relError(out['grad/x']!.data as Float32Array, golden(`${name}.grad_input`).data)).toBeLessThanOrEqual(1e-4);
    });
  }

  it('swin_tiny_patch4_window7_224: timm keys, 28,288,354 parameters and matching logits', async () => {
    const c = meta.tiny224;
    const model = deterministicModel(createModel('swin_tiny_patch4_window7_224'));
    expect(model.namedParameters().map(([k]) => k)).toEqual(c.keys);
    expect(model.numParams()).toBe(c.num_params);
    expect(maxAbsDiff(await logitsOf(model, c.input_shape), golden('tiny224.logits').data)).toBeLessThanOrEqual(1e-4);
  }, 180_000);
});

describe('Swin details', () => {
  it('relative position index and shifted-window mask as timm builds them', () => {
    // a 2×2 window: pairs (0, 0) → centre row of the 3×3 table, (0, 3) → offset (−1, −1)
    expect(Array.from(relativePositionIndex(2), Number)).toEqual([4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]);
    // 4×4 map, window 2, shift 1: the last window mixes four regions, the first none
    const m = shiftedWindowMask(4, 4, 2, 1);
    expect(Array.from(m.subarray(0, 16)).every((v) => v === 0)).toBe(true);
    expect(Array.from(m.subarray(3 * 16, 4 * 16)).filter((v) => v === -100).length).toBe(12);
  });

  it('loads a Microsoft / timm ≤ 0.6 state dict (downsample at the end of stages, head.weight, saved buffers)', async () => {
    const c = meta.small;
    const model = deterministicModel(new SwinTransformer(fromPy(c.config)));
    const old: StateDict = {};
    for (const [k, t] of Object.entries(model.stateDict())) {
      const key = k.replace(/^layers\.(\d+)\.downsample\./, (_, i: string) => `layers.${Number(i) - 1}.downsample.`).replace(/^head\.fc\./, 'head.');
      old[key] = { data: Float32Array.from(t.data), shape: t.shape };
    }
    old['layers.0.blocks.0.attn.relative_position_index'] = { data: new Float32Array(256), shape: [16, 16] };
    old['layers.0.blocks.1.attn_mask'] = { data: new Float32Array(16 * 16 * 16), shape: [16, 16, 16] };
    expect(Object.keys(old)).toContain('layers.0.downsample.reduction.weight');
    const loaded = new SwinTransformer(fromPy(c.config));
    loaded.loadStateDict(old);
    expect(maxAbsDiff(await logitsOf(loaded, c.input_shape), golden('small.logits').data)).toBeLessThanOrEqual(1e-4);
    expect(swinCheckpointFilter({ 'head.fc.weight': old['head.weight']! })).toHaveProperty(['head.fc.weight']);
  });

  it('a wrong shape or a missing key fails with the list', () => {
    const model = new SwinTransformer(fromPy(meta.small.config));
    const sd = model.stateDict();
    delete sd['norm.weight'];
    sd['head.fc.bias'] = { data: new Float32Array(3), shape: [3] };
    expect(() => model.loadStateDict(sd)).toThrow(/shape mismatch for head\.fc\.bias: checkpoint \[3\] vs model \[7\].*missing keys: norm\.weight/);
  });
});

describe('Swin checkpoints in the files users hold', () => {
  it('a bare timm safetensors file and a timm hub directory load with the architecture read from the weights', async () => {
    const { mkdtempSync, rmSync, writeFileSync, mkdirSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { writeSafetensors } = await import('../../src/checkpoint/safetensors.js');
    const { loadCheckpoint } = await import('../../src/checkpoint/checkpoint.js');
    const dir = mkdtempSync(join(tmpdir(), 'tessera-swin-'));
    try {
      const c = meta.small;
      const model = deterministicModel(new SwinTransformer({ ...fromPy(c.config), imgSize: 224 }));
      const file = join(dir, 'model.safetensors');
      writeSafetensors(file, Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, { shape: t.shape, data: t.data }])), { format: 'pt' });
      const bare = loadCheckpoint(file);
      expect(bare.model.family).toBe('swin');
      expect(bare.model.config).toMatchObject({ embedDim: 16, depths: [2, 2, 2], numHeads: [2, 2, 4], windowSize: 4, numClasses: 7, patchSize: 2 });
      const hub = join(dir, 'hub');
      mkdirSync(hub);
      writeFileSync(join(hub, 'config.json'), JSON.stringify({ architecture: 'swin_tiny_patch4_window7_224', pretrained_cfg: { label_names: ['a', 'b', 'c', 'd', 'e', 'f', 'g'] } }));
      const tiny = deterministicModel(createModel('swin_tiny_patch4_window7_224', { numClasses: 7 }));
      writeSafetensors(join(hub, 'model.safetensors'), Object.fromEntries(Object.entries(tiny.stateDict()).map(([k, t]) => [k, { shape: t.shape, data: t.data }])), { format: 'pt' });
      // the bare file alone: its inferred architecture is a registered entry's
      expect(loadCheckpoint(join(hub, 'model.safetensors')).meta.model).toBe('swin_tiny_patch4_window7_224');
      const fromHub = loadCheckpoint(hub);
      expect(fromHub.meta.model).toBe('swin_tiny_patch4_window7_224');
      expect(fromHub.meta.classNames).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
      expect(fromHub.model.numParams()).toBe(tiny.numParams());
      expect(Array.from(fromHub.model.stateDict()['layers.2.blocks.5.mlp.fc2.weight']!.data)).toEqual(Array.from(tiny.stateDict()['layers.2.blocks.5.mlp.fc2.weight']!.data));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Swin attention maps', () => {
  it('the last stage attends over the whole stage in one window: a token grid for rollout; the padded config has none', async () => {
    expect(createModel('swin_tiny_patch4_window7_224').tokenGrid()).toEqual({ grid: [7, 7], prefix: 0, pool: 'patch-mean', depth: 2, heads: 24 });
    expect(createModel('swin_nano_patch2_window7_28').tokenGrid()).toMatchObject({ grid: [7, 7], depth: 4 });
    // padded: the last stage is a 3×3 map in a 2×2 window (timm's floor-halved resolution 2)
    expect(new SwinTransformer(fromPy(meta.padded.config)).tokenGrid()).toBeUndefined();
    const model = deterministicModel(new SwinTransformer(fromPy(meta.small.config)));
    const exe = await compile((x) => {
      const { attentions } = model.forward(x, { attention: true });
      return Object.fromEntries(attentions!.map((a, i) => [`a${i}`, a]));
    }, [{ name: 'x', shape: ['batch', 3, 32, 32] }]);
    const out = await exe.run({ x: deterministicInput(2 * 3 * 32 * 32) });
    await exe.dispose();
    expect(Object.keys(out)).toEqual(['a0', 'a1']);
    expect(out.a0!.shape).toEqual([2, 4, 16, 16]);
    const rows = out.a1!.data as Float32Array;
    for (let r = 0; r < rows.length / 16; r++) expect(rows.subarray(r * 16, r * 16 + 16).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
  });
});
