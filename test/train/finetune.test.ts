/** Fine-tuning: fitting pretrained weights to a new model, freezing, progressive unfreezing, layer decay. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adaptInputConv, layerDecayScales, setTrainable } from '../../src/train/finetune.js';
import { VisionTransformer } from '../../src/models/vit.js';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { selectClasses, sliceDataset, type TensorDataset } from '../../src/data/datasets/dataset.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { readStateDict } from '../../src/checkpoint/checkpoint.js';

const small = { imgSize: 28, patchSize: 4, inChans: 1, numClasses: 10, embedDim: 48, depth: 2, numHeads: 3 };

describe('fitting pretrained weights', () => {
  it("sums RGB patch kernels into one channel (timm's adapt_input_conv)", () => {
    const w = Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => i);
    const { data, shape } = adaptInputConv(w, [2, 3, 2, 2], 1);
    expect(shape).toEqual([2, 1, 2, 2]);
    expect(Array.from(data)).toEqual([0 + 4 + 8, 1 + 5 + 9, 2 + 6 + 10, 3 + 7 + 11, 12 + 16 + 20, 13 + 17 + 21, 14 + 18 + 22, 15 + 19 + 23]);
  });

  it("groups layers as timm's layer decay does (the final norm with the last block; timm's own scales per family: timm_families.test.ts)", () => {
    const s = layerDecayScales(new VisionTransformer(small), 0.5);
    expect(s.get('pos_embed')).toBe(0.125);
    expect(s.get('patch_embed.proj.weight')).toBe(0.125);
    expect(s.get('blocks.0.attn.qkv.weight')).toBe(0.25);
    expect(s.get('blocks.1.mlp.fc2.bias')).toBe(0.5);
    expect(s.get('norm.weight')).toBe(0.5);
    expect(s.get('head.weight')).toBe(1);
  });

  it('unfreezes one more block from the top every N epochs, embeddings last', () => {
    const m = new VisionTransformer(small);
    const groups = (names: string[]) => [...new Set(names.map((k) => k.split('.').slice(0, k.startsWith('blocks') ? 2 : 1).join('.')))].sort();
    expect(groups(setTrainable(m, 'backbone', 0, 1))).toEqual(['head', 'norm']);
    expect(groups(setTrainable(m, 'backbone', 1, 1))).toEqual(['blocks.1', 'head', 'norm']);
    expect(groups(setTrainable(m, 'backbone', 2, 1))).toEqual(['blocks.0', 'blocks.1', 'head', 'norm']);
    expect(setTrainable(m, 'backbone', 3, 1).length).toBe(m.namedParameters().length);
    expect(groups(setTrainable(m, 'backbone', 7))).toEqual(['head', 'norm']);
    expect(setTrainable(m, 'none', 0).length).toBe(m.namedParameters().length);
  });
});

describe('fine-tuning on Fashion-MNIST classes 5–9 from a model pretrained on 0–4', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-ft-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  let data: { train: TensorDataset; test: TensorDataset };
  beforeAll(async () => {
    const [tr, te] = [await loadBuiltinDataset('fashion-mnist', 'train'), await loadBuiltinDataset('fashion-mnist', 'test')];
    data = { train: sliceDataset(tr, 0, 4000), test: sliceDataset(te, 0, 1000) };
  });

  it('re-initialises the head, and a linear probe leaves the backbone untouched', async () => {
    const pre = await train(resolveTrainConfig({ epochs: 1, batchSize: 64, classes: [0, 1, 2, 3, 4], output: join(dir, 'pre') }), { datasets: data });
    expect(pre.model.config.numClasses).toBe(5);
    const probe = await train(resolveTrainConfig({
      epochs: 3, batchSize: 32, lr: 3e-3, classes: [5, 6, 7, 8, 9], trainLimit: 500, freeze: 'backbone', pretrained: join(dir, 'pre', 'last.safetensors'), output: join(dir, 'probe'),
    }), { datasets: data });
    // chance is 0.2 for five classes
    expect(probe.metrics[2]!.eval_top1).toBeGreaterThan(0.4);
    const a = readStateDict(join(dir, 'pre', 'last.safetensors')).state;
    const b = readStateDict(join(dir, 'probe', 'last.safetensors')).state;
    expect(Array.from(b['blocks.0.attn.qkv.weight']!.data)).toEqual(Array.from(a['blocks.0.attn.qkv.weight']!.data));
    expect(Array.from(b['pos_embed']!.data)).toEqual(Array.from(a['pos_embed']!.data));
    expect(Array.from(b['head.weight']!.data)).not.toEqual(Array.from(a['head.weight']!.data));
    expect(b['head.weight']!.shape).toEqual([5, 96]);
  });

  it('fine-tuning defaults apply only when not set explicitly', () => {
    expect(resolveTrainConfig({ pretrained: 'x' }).lr).toBe(5e-4);
    expect(resolveTrainConfig({ pretrained: 'x', lr: 0.01 }).lr).toBe(0.01);
    expect(resolveTrainConfig({}).lr).toBe(2e-3);
  });

  it('selects and relabels classes', () => {
    const s = selectClasses(data.test, [9, 0]);
    expect(s.classNames).toEqual(['Ankle boot', 'T-shirt/top']);
    expect(new Set(s.labels)).toEqual(new Set([0, 1]));
    expect(() => selectClasses(data.test, [3, 12])).toThrow('classes 12 do not exist in fashion-mnist/test');
  });
});
