/**
 * An official DINO training checkpoint (the layout train_dino saves: `student` with DDP's
 * `module.` prefixes, `teacher`, `epoch`, `dino_loss`; fixture by scripts/dino_ref.py) loads:
 * as a DINO model (the teacher, as DINO evaluates it), and through `train --pretrained` as the
 * backbone of a ViT that then fine-tunes, its classifier fresh; a released backbone-only file
 * (plain timm keys) starts a ViT too; `pretrain --method dino --pretrained` continues from it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadPretrainedWeights } from '../../src/train/finetune.js';
import { buildModel } from '../../src/train/build_model.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset } from '../../src/data/datasets/dataset.js';
import { fixturePath, readJsonFixture } from '../helpers/fixtures.js';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.js';

const ckpt = fixturePath('dino_official.pth');
const teacher = readJsonFixture<Record<string, [number, number, number[]]>>('dino_official.json');
const dir = mkdtempSync(join(tmpdir(), 'tessera-dino-ckpt-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const summary = (t: { data: Float32Array; shape: readonly number[] }) => [t.data.reduce((a, v) => a + v, 0), t.data[0], [...t.shape]];
const expectTensor = (t: { data: Float32Array; shape: readonly number[] } | undefined, key: string) => {
  expect(t, key).toBeDefined();
  const [sum, first, shape] = teacher[key]!;
  const [s, f, sh] = summary(t!);
  expect(sh, key).toEqual(shape);
  expect(f, key).toBeCloseTo(first, 6);
  expect(s as number, key).toBeCloseTo(sum, 3);
};

describe('official DINO checkpoints', () => {
  it('the teacher of a teacher/student checkpoint loads as a DINO model, every tensor', async () => {
    const w = await loadPretrainedWeights(ckpt);
    expect(w.meta?.family).toBe('dino');
    expect(w.meta?.config).toMatchObject({ embedDim: 64, depth: 1, numHeads: 1, outDim: 64, hiddenDim: 32, bottleneckDim: 16, imgSize: 28, inChans: 1 });
    expect(Object.keys(w.state).sort()).toEqual(Object.keys(teacher).sort());
    for (const k of Object.keys(teacher)) expectTensor(w.state[k], k);
  });

  it('train --pretrained starts a vit from the backbone (head fresh) and fine-tunes it', async () => {
    const cfg = resolveTrainConfig({ model: 'vit_tiny_patch4_28', pretrained: ckpt, epochs: 1, batchSize: 32, output: join(dir, 'ft'), seed: 1 });
    const { model } = await buildModel(cfg, 10, [1, 28, 28], () => {});
    expect(model.family).toBe('vit');
    const state = model.stateDict();
    for (const k of Object.keys(teacher).filter((k) => k.startsWith('backbone.'))) expectTensor(state[k.slice('backbone.'.length)], k);
    expect(state['head.weight']!.shape).toEqual([10, 64]);

    const [a, b] = [await loadBuiltinDataset('fashion-mnist', 'train'), await loadBuiltinDataset('fashion-mnist', 'test')];
    const run = await train(cfg, { datasets: { train: sliceDataset(a, 0, 64), test: sliceDataset(b, 0, 32) } });
    expect(run.status).toBe('completed');
    expect(Number.isFinite(run.metrics[0]!.train_loss)).toBe(true);
  }, 60_000);

  it('pretrain --method dino continues from it: student and teacher start at the checkpoint\'s teacher', async () => {
    const [a, b] = [await loadBuiltinDataset('fashion-mnist', 'train'), await loadBuiltinDataset('fashion-mnist', 'test')];
    const cfg = resolveTrainConfig({ model: 'dino_vit_tiny_patch4_28', method: 'dino', pretrained: ckpt, epochs: 1, batchSize: 16, localCrops: 1, lr: 1e-12, output: join(dir, 'cont') });
    const run = await train(cfg, { datasets: { train: sliceDataset(a, 0, 16), test: sliceDataset(b, 0, 16) } });
    expect(run.status).toBe('completed');
    const state = run.model.stateDict();
    // an lr of 1e-12 leaves the weights where they started, up to float32 rounding
    for (const k of ['backbone.pos_embed', 'head.mlp.4.weight', 'head.last_layer.weight_v']) expectTensor(state[k], k);
    const t = loadCheckpoint(join(run.runDir, 'teacher.safetensors')).model.stateDict();
    for (const k of ['backbone.blocks.0.attn.qkv.weight', 'head.last_layer.weight_v']) expectTensor(t[k], k);
  }, 60_000);

  it('a released backbone-only file (plain timm keys) starts a vit', async () => {
    const cfg = resolveTrainConfig({ model: 'vit_tiny_patch4_28', pretrained: fixturePath('dino_official_backbone.pth') });
    const { model } = await buildModel(cfg, 10, [1, 28, 28], () => {});
    const state = model.stateDict();
    for (const k of Object.keys(teacher).filter((k) => k.startsWith('backbone.'))) expectTensor(state[k.slice('backbone.'.length)], k);
    expect(model.config.numHeads).toBe(1);
  });
});
