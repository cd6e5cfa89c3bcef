/**
 * Foreign layouts against their source frameworks (scripts/make_layout_goldens.py): timm (hub
 * directory and an fc_norm + no_embed_class file), Hugging Face ViTForImageClassification
 * (safetensors, eps 1e-12) and ViTModel (float16 pytorch_model.bin), torchvision's own
 * VisionTransformer (.pth). Logits after conversion match ≤ 1e-4.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { detectLayout, foreignMeta, loadForeignCheckpoint, LayoutError } from '../../src/checkpoint/layouts.js';
import { serializeSafetensors } from '../../src/checkpoint/safetensors.js';
import { VisionTransformer, type VitConfig } from '../../src/models/vit.js';
import { goldens, layoutFixture, logitsOf, maxAbsDiff, removeTempDirs, tempDir } from './layout_helpers.js';

afterAll(removeTempDirs);

const cases = [
  { name: 'timm', layout: 'timm' },
  { name: 'timm_avg_noembed', layout: 'timm' },
  { name: 'hf', layout: 'hf' },
  { name: 'hf_model', layout: 'hf' },
  { name: 'torchvision', layout: 'torchvision' },
] as const;

describe('converted logits match the source framework', () => {
  for (const { name, layout } of cases) {
    it(`${name} (${layout})`, async () => {
      const g = goldens[name];
      const ckpt = loadForeignCheckpoint(layoutFixture(g.path), { numHeads: g.num_heads });
      expect(ckpt.layout).toBe(layout);
      expect(ckpt.config).toMatchObject(g.config);
      const logits = await logitsOf(ckpt.config, ckpt.stateDict, g.input_shape);
      expect(maxAbsDiff(logits, g.logits)).toBeLessThanOrEqual(1e-4);
    });
  }
});

describe('what the files say besides the weights', () => {
  it('timm hub directory: heads from model_args, labels and preprocessing from pretrained_cfg', () => {
    const ckpt = loadForeignCheckpoint(layoutFixture('timm'));
    expect(ckpt.config.numHeads).toBe(2);
    expect(ckpt.modelName).toBe('vit_tiny_patch8_32');
    expect(ckpt.classNames).toHaveLength(10);
    expect(ckpt.classNames![3]).toBe('class_3');
    expect(ckpt.preprocessing).toEqual({ inputSize: [3, 32, 32], mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3], cropPct: 0.95, interpolation: 'bilinear' });
  });

  it('Hugging Face: eps 1e-12, id2label and the preprocessor config', () => {
    const ckpt = loadForeignCheckpoint(layoutFixture('hf'));
    expect(ckpt.config.eps).toBe(1e-12);
    expect(ckpt.classNames).toEqual(goldens.hf.class_names);
    expect(ckpt.preprocessing).toEqual({ inputSize: [3, 32, 32], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], interpolation: 'bicubic', cropPct: 1 });
    const meta = foreignMeta(ckpt);
    expect(meta).toMatchObject({ classNames: goldens.hf.class_names, inputSize: [3, 32, 32], interpolation: 'bicubic', cropPct: 1 });
  });

  it('ViTModel: the pooler is reported as dropped, the model is headless', () => {
    const ckpt = loadForeignCheckpoint(layoutFixture('hf_model'));
    expect(ckpt.dropped).toEqual(goldens.hf_model.dropped);
    expect(ckpt.config.numClasses).toBe(0);
  });

  it('torchvision: ImageNet preprocessing, heads from the hint', () => {
    const ckpt = loadForeignCheckpoint(layoutFixture('torchvision_vit.pth'), { numHeads: 2 });
    expect(ckpt.preprocessing).toMatchObject({ mean: [0.485, 0.456, 0.406], interpolation: 'bilinear', cropPct: 0.875 });
  });

  it('loadCheckpoint reads Hugging Face directories and torchvision files for eval/predict', async () => {
    const { model, meta } = loadCheckpoint(layoutFixture('hf'));
    expect(meta.classNames).toEqual(goldens.hf.class_names);
    expect(model.config.eps).toBe(1e-12);
    const logits = await logitsOf(model.config, model.stateDict(), goldens.hf.input_shape);
    expect(maxAbsDiff(logits, goldens.hf.logits)).toBeLessThanOrEqual(1e-4);
  });
});

describe('timm configs inferred from the weights alone', () => {
  const small = { imgSize: 16, patchSize: 4, embedDim: 24, depth: 2, numHeads: 3, numClasses: 5 };
  it.each([
    ['token pooling', {}],
    ['avg pooling with fc_norm, no class token', { globalPool: 'avg', classToken: false }],
    ['DeiT distilled', { distilled: true }],
    ['no_embed_class', { noEmbedClass: true }],
    ['no qkv bias, MLP ratio 3, 1 channel, 40 px', { qkvBias: false, mlpRatio: 3, inChans: 1, imgSize: 40 }],
    ['headless', { numClasses: 0 }],
  ] as [string, Partial<VitConfig>][])('%s', (_, over) => {
    const model = new VisionTransformer({ ...small, ...over });
    const path = join(tempDir(), 'm.safetensors');
    writeFileSync(path, serializeSafetensors(Object.fromEntries(model.namedParameters().map(([k, p]) => [k, { shape: p.shape, data: p.data }]))));
    const ckpt = loadForeignCheckpoint(path, { numHeads: 3 });
    expect(ckpt.config).toEqual(model.config);
  });
});

describe('refusals', () => {
  it('heads that the weights cannot say must be given', () => {
    expect(() => loadForeignCheckpoint(layoutFixture('torchvision_vit.pth'))).toThrow(/do not say how many attention heads a 32-dim model has; pass numHeads/);
  });

  it('unknown timm keys are listed, never dropped', () => {
    const dir = tempDir();
    const ckpt = loadForeignCheckpoint(layoutFixture('timm'));
    const tensors = Object.fromEntries(Object.entries(ckpt.stateDict).map(([k, t]) => [k, { shape: t.shape, data: t.data }]));
    const extra = { 'blocks.0.attn.bias_table': { shape: [4], data: new Float32Array(4) }, 'extra.weight': { shape: [1], data: new Float32Array(1) } };
    writeFileSync(join(dir, 'x.safetensors'), serializeSafetensors({ ...tensors, ...extra }));
    expect(() => loadForeignCheckpoint(join(dir, 'x.safetensors'), { numHeads: 2 })).toThrow(/unknown keys: blocks\.0\.attn\.bias_table, extra\.weight/);
    const ls = { 'blocks.0.ls1.gamma': { shape: [32], data: new Float32Array(32) } };
    writeFileSync(join(dir, 'ls.safetensors'), serializeSafetensors({ ...tensors, ...ls }));
    expect(() => loadForeignCheckpoint(join(dir, 'ls.safetensors'), { numHeads: 2 })).toThrow(/layer scale.*blocks\.0\.ls1\.gamma/);
  });

  it('unknown Hugging Face keys are listed', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'hf'));
    copyFileSync(layoutFixture('hf/config.json'), join(dir, 'hf', 'config.json'));
    const sd = { 'vit.embeddings.patch_embeddings.projection.weight': { shape: [32, 3, 8, 8], data: new Float32Array(32 * 3 * 64) }, 'vit.encoder.layer.0.attention.relative_bias': { shape: [2], data: new Float32Array(2) } };
    writeFileSync(join(dir, 'hf', 'model.safetensors'), serializeSafetensors(sd));
    expect(() => loadForeignCheckpoint(join(dir, 'hf'))).toThrow(/unknown keys \(not part of a ViT tessera can load\): encoder\.layer\.0\.attention\.relative_bias/);
  });

  it('non-ViT Hugging Face models and activations are refused by name', () => {
    const dir = tempDir();
    copyFileSync(layoutFixture('hf/model.safetensors'), join(dir, 'model.safetensors'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'vit', hidden_act: 'gelu_new', num_attention_heads: 4 }));
    expect(() => loadForeignCheckpoint(dir)).toThrow(/hidden_act "gelu_new" is not supported/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ model_type: 'swin' }));
    expect(() => loadForeignCheckpoint(dir)).toThrow(/model_type "swin" is not supported/);
  });

  it('an unrecognised layout names the keys it saw', () => {
    expect(() => detectLayout(['conv1.weight', 'fc.weight'], 'resnet.pth')).toThrow(LayoutError);
    expect(() => detectLayout(['conv1.weight', 'fc.weight'], 'resnet.pth')).toThrow(/resnet\.pth: not a ViT layout.*conv1\.weight, fc\.weight/);
  });

  it('an empty directory says what it expected', () => {
    expect(() => loadForeignCheckpoint(tempDir())).toThrow(/no model\.safetensors or pytorch_model\.bin/);
  });
});
