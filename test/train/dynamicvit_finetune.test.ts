/**
 * `train --method dynamicvit --pretrained <plain ViT run>` through the training loop on a slice of
 * Fashion-MNIST: the plain checkpoint loads into the pruning model (score_predictor.N fresh), the
 * run completes with its teacher, its checkpoint carries the scorers beside timm's keys, the
 * scorers were trained, and a model without dynamic_keep or without --pretrained is refused.
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

    const plain = resolveTrainConfig({ model: 'vit_tiny_patch4_28', method: 'dynamicvit', pretrained: ckpt, modelKwargs: arch, epochs: 1, output: join(dir, 'refused'), threads: 1 });
    await expect(train(plain, { datasets: data() })).rejects.toThrow(/dynamic_keep/);
  }, 240_000);
});
