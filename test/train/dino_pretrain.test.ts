/**
 * DINO pretraining through the training loop (`--method dino`) on a 256-image slice of
 * Fashion-MNIST: the run directory is train's, the head's last layer stays put during the first
 * epoch and moves in the second, and a run killed mid-epoch
 * resumes to the same student, teacher and centre as an uninterrupted run (the crops come from
 * the run's seeded stream; teacher and centre are saved in the resume state); its backbone starts
 * a vit for fine-tuning, and teacher.safetensors holds the teacher as a checkpoint.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset, type TensorDataset } from '../../src/data/datasets/dataset.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { loadCheckpoint, readStateDict } from '../../src/checkpoint/checkpoint.js';
import { readSafetensors, toFloat32 } from '../../src/checkpoint/safetensors.js';
import { DinoViT } from '../../src/models/dino.js';
import { buildModel } from '../../src/train/build_model.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-dino-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let data: () => { train: TensorDataset; test: TensorDataset };
beforeAll(async () => {
  const [a, b] = [await loadBuiltinDataset('fashion-mnist', 'train'), await loadBuiltinDataset('fashion-mnist', 'test')];
  data = () => ({ train: sliceDataset(a, 0, 256), test: sliceDataset(b, 0, 32) });
});

const base = {
  model: 'dino_vit_tiny_patch4_28', method: 'dino', epochs: 2, batchSize: 32, lr: 1e-3, minLr: 1e-6, warmupEpochs: 0, seed: 5,
  weightDecay: 0.04, weightDecayEnd: 0.4, clipGrad: 3, localCrops: 2, hflip: 0, dropPath: 0.1,
  modelKwargs: { embed_dim: 32, depth: 2, num_heads: 2, out_dim: 64, hidden_dim: 48, bottleneck_dim: 16 },
};

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('DINO pretraining through the training loop', () => {
  it('freezes the last layer for an epoch and resumes a killed run to the same weights and losses', async () => {
    const init = new DinoViT({ imgSize: 28, patchSize: 4, inChans: 1, embedDim: 32, depth: 2, numHeads: 2, mlpRatio: 2, outDim: 64, hiddenDim: 48, bottleneckDim: 16, seed: 5 });
    const v0 = Float32Array.from(init.namedParameters().find(([k]) => k === 'head.last_layer.weight_v')![1].data);
    const oneEpoch = await train(resolveTrainConfig({ ...base, epochs: 1, output: join(dir, 'one') }), { datasets: data() });
    const after1 = readStateDict(join(oneEpoch.runDir, 'last.safetensors')).state;
    expect(maxDiff(after1['head.last_layer.weight_v']!.data, v0)).toBe(0);
    expect(maxDiff(after1['head.mlp.0.weight']!.data, Float32Array.from(init.namedParameters().find(([k]) => k === 'head.mlp.0.weight')![1].data))).toBeGreaterThan(1e-4);

    const straight = await train(resolveTrainConfig({ ...base, output: join(dir, 'straight') }), { datasets: data() });
    expect(straight.status).toBe('completed');
    expect(straight.metrics.every((m) => Number.isFinite(m.train_loss))).toBe(true);
    const a = readStateDict(join(straight.runDir, 'last.safetensors')).state;
    expect(maxDiff(a['head.last_layer.weight_v']!.data, v0)).toBeGreaterThan(1e-5);
    expect(a['head.last_layer.weight_g']!.data.every((v) => v === 1)).toBe(true);

    // teacher.safetensors: the teacher of the resume state, a checkpoint of the same model, behind the student
    const teacherFile = loadCheckpoint(join(straight.runDir, 'teacher.safetensors'));
    expect(teacherFile.model.family).toBe('dino');
    const saved = readSafetensors(join(straight.runDir, 'state.safetensors')).tensors;
    const t = Object.fromEntries(teacherFile.model.namedState().map(([k, p]) => [k, p.data]));
    for (const k of Object.keys(a).filter((k) => k !== 'head.last_layer.weight_g')) expect(maxDiff(t[k]!, toFloat32(saved.get(`objective.teacher.${k}`)!)), k).toBe(0);
    expect(maxDiff(t['backbone.blocks.0.attn.qkv.weight']!, a['backbone.blocks.0.attn.qkv.weight']!.data)).toBeGreaterThan(1e-6);

    const controller = new AbortController();
    const killed = await train(resolveTrainConfig({ ...base, output: join(dir, 'killed') }), {
      datasets: data(), signal: controller.signal,
      events: { onStep: (s) => { if (s.epoch === 2 && s.batch === 3) controller.abort(); } },
    });
    expect(killed.status).toBe('interrupted');
    const resumed = await train(resolveTrainConfig({ ...base, output: join(dir, 'killed') }), { datasets: data(), resume: killed.runDir });
    expect(resumed.status).toBe('completed');
    const b = readStateDict(join(resumed.runDir, 'last.safetensors')).state;
    expect(Object.keys(b)).toEqual(Object.keys(a));
    for (const [k, t] of Object.entries(a)) expect(maxDiff(t.data, b[k]!.data), k).toBeLessThan(1e-6);
    expect(resumed.metrics.map((m) => m.train_loss)).toEqual(straight.metrics.map((m) => m.train_loss));

    // the run's backbone fine-tunes as a vit (`train --pretrained RUN/last.safetensors --model vit_tiny_patch4_28`)
    const { model } = await buildModel(resolveTrainConfig({ model: 'vit_tiny_patch4_28', pretrained: join(straight.runDir, 'last.safetensors') }), 10, [1, 28, 28], () => {});
    expect(model.family).toBe('vit');
    const vit = model.stateDict();
    for (const k of ['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'blocks.1.mlp.fc2.weight', 'norm.weight']) expect(maxDiff(vit[k]!.data, a[`backbone.${k}`]!.data), k).toBe(0);
  }, 60_000);
});
