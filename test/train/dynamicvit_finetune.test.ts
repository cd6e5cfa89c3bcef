/**
 * `train --method dynamicvit --pretrained <plain ViT run>` through the training loop on a slice of
 * Fashion-MNIST: the plain checkpoint loads into the pruning model (score_predictor.N fresh), the
 * run completes with its teacher, its checkpoint carries the scorers beside timm's keys, the
 * scorers were trained (the backbone at the reference's 0.01 of the LR, cls_token and pos_embed
 * not at all), and a model without dynamic_keep is refused. `export` of the run puts the
 * top-k selection in the graph; ORT answers batch 1 as batch 4, and unlike the plain checkpoint.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset, type TensorDataset } from '../../src/data/datasets/dataset.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { readStateDict } from '../../src/checkpoint/checkpoint.js';
import { decodeModel } from '../../src/onnx/proto.js';
import { loadOnnxModel } from '../../src/runtime/onnx_model.js';
import { readFileSync } from 'node:fs';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-dynamicvit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let data: () => { train: TensorDataset; test: TensorDataset };
beforeAll(async () => {
  const [a, b] = [await loadBuiltinDataset('fashion-mnist', 'train'), await loadBuiltinDataset('fashion-mnist', 'test')];
  data = () => ({ train: sliceDataset(a, 0, 256), test: sliceDataset(b, 0, 64) });
});

const arch = { embed_dim: 32, depth: 4, num_heads: 2 };

describe('DynamicViT fine-tuning through the training loop', () => {
  it('fine-tunes a plain ViT checkpoint with pruning and distillation; refuses a model without pruning', async () => {
    const pre = await train(resolveTrainConfig({ model: 'vit_tiny_patch4_28', modelKwargs: arch, epochs: 1, batchSize: 32, lr: 1e-3, warmupEpochs: 0, seed: 5, output: join(dir, 'pre'), threads: 1 }), { datasets: data() });
    expect(pre.status).toBe('completed');
    const ckpt = join(pre.runDir, 'last.safetensors');
    const cfg = resolveTrainConfig({ model: 'vit_tiny_patch4_28', method: 'dynamicvit', pretrained: ckpt, modelKwargs: { ...arch, dynamic_keep: 0.7 }, epochs: 1, batchSize: 32, lr: 1e-3, warmupEpochs: 0, seed: 5, output: join(dir, 'dyn'), threads: 1 });
    const run = await train(cfg, { datasets: data() });
    expect(run.status).toBe('completed');
    expect(Number.isFinite(run.metrics[0]!.train_loss)).toBe(true);
    expect(run.metrics[0]!.eval_top1).toBeGreaterThanOrEqual(0);
    const sd = readStateDict(join(run.runDir, 'last.safetensors')).state;
    const scorers = Object.keys(sd).filter((k) => k.startsWith('score_predictor.'));
    expect(scorers).toContain('score_predictor.0.in_conv.1.weight');
    expect(scorers).toContain('score_predictor.2.out_conv.4.bias'); // depth 4: stages before blocks 1, 2, 3
    expect(Object.keys(sd)).toContain('blocks.0.attn.qkv.weight');
    const base = readStateDict(ckpt).state;
    expect(Object.keys(base).some((k) => k.startsWith('score_predictor.'))).toBe(false);
    // the backbone moved from the teacher's weights (the student trains), so did the scorers (their last layer's bias starts at 0)
    expect(Array.from(sd['blocks.0.attn.qkv.weight']!.data)).not.toEqual(Array.from(base['blocks.0.attn.qkv.weight']!.data));
    expect(Array.from(sd['score_predictor.0.out_conv.4.bias']!.data).some((v) => v !== 0)).toBe(true);
    // the reference's parameter groups: cls_token and pos_embed stay as pretrained; the backbone
    // learns at 0.01 of the LR after its first sixth of the 8 steps (7 steps of AdamW at ≤ 1e-5,
    // each moving a weight by at most ~3× its LR), where one step at the full 1e-3 would move it
    // ~1e-3; the scorers at the full LR moved (out_conv.4.bias, above)
    for (const k of ['cls_token', 'pos_embed']) expect(Array.from(sd[k]!.data), k).toEqual(Array.from(base[k]!.data));
    const moved = (k: string) => Math.max(...Array.from(sd[k]!.data, (v, i) => Math.abs(v - base[k]!.data[i]!)));
    expect(moved('blocks.0.attn.qkv.weight')).toBeLessThan(7 * 1e-5 * 3.2);
    expect(moved('head.weight')).toBeLessThan(7 * 1e-5 * 3.2);

    const out = join(dir, 'dyn.onnx');
    const plainOut = join(dir, 'plain.onnx');
    const [e, p] = await Promise.all([
      runCli(['export', '--checkpoint', join(run.runDir, 'last.safetensors'), '--out', out, '--json']),
      runCli(['export', '--checkpoint', ckpt, '--out', plainOut, '--json']),
    ]);
    expect(e.code, e.stderr).toBe(0);
    expect(p.code, p.stderr).toBe(0);
    const ops = new Set((decodeModel(readFileSync(out)).graph?.node ?? []).map((n) => n.opType));
    for (const op of ['TopK', 'GatherElements']) expect(ops.has(op), op).toBe(true);
    const image = (k: number) => Float32Array.from({ length: 784 }, (_, i) => Math.sin(0.37 * i * (k + 1)) * 0.5 + 0.5);
    const four = new Float32Array(4 * 784);
    for (let k = 0; k < 4; k++) four.set(image(k), k * 784);
    const pruned = await loadOnnxModel(out);
    const unpruned = await loadOnnxModel(plainOut);
    const a = (await pruned.executable.run({ x: { data: four, shape: [4, 1, 28, 28] } })).logits!.data as Float32Array;
    const b = (await pruned.executable.run({ x: { data: image(2), shape: [1, 1, 28, 28] } })).logits!.data as Float32Array;
    for (let i = 0; i < 10; i++) expect(Math.abs(a[20 + i]! - b[i]!)).toBeLessThanOrEqual(1e-5);
    const c = (await unpruned.executable.run({ x: { data: four, shape: [4, 1, 28, 28] } })).logits!.data as Float32Array;
    expect(Math.max(...Array.from(a, (v, i) => Math.abs(v - c[i]!)))).toBeGreaterThan(1e-4);
    await pruned.dispose();
    await unpruned.dispose();

    // dynamic_keep adds weights: refused on the plain checkpoint, nothing written; another ρ applies to the pruning one
    const [refused, otherKeep] = await Promise.all([
      runCli(['export', '--checkpoint', ckpt, '--out', join(dir, 'never.onnx'), '--model-kwargs', 'dynamic_keep=0.7']),
      runCli(['export', '--checkpoint', join(run.runDir, 'last.safetensors'), '--out', join(dir, 'keep03.onnx'), '--model-kwargs', 'dynamic_keep=0.3', '--json']),
    ]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/dynamic_keep change the model's weights \(score_predictor\.0\./);
    expect(otherKeep.code, otherKeep.stderr).toBe(0);
    const fewer = await loadOnnxModel(join(dir, 'keep03.onnx'));
    const f = (await fewer.executable.run({ x: { data: four, shape: [4, 1, 28, 28] } })).logits!.data as Float32Array;
    expect(Math.max(...Array.from(a, (v, i) => Math.abs(v - f[i]!)))).toBeGreaterThan(1e-5);
    await fewer.dispose();

    const plain = resolveTrainConfig({ model: 'vit_tiny_patch4_28', method: 'dynamicvit', pretrained: ckpt, modelKwargs: arch, epochs: 1, output: join(dir, 'refused'), threads: 1 });
    await expect(train(plain, { datasets: data() })).rejects.toThrow(/dynamic_keep/);
  }, 240_000);
});
