/**
 * `pretrain` on a flat folder of unlabelled images (no class subfolders), for both methods: the
 * folder is one unlabelled class with a held-out 10%, the run completes and its checkpoint keeps
 * the pretraining model; supervised training on the same folder is still refused.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { readStateDict } from '../../src/checkpoint/checkpoint.js';
import { Random } from '../../src/random.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-flat-'));
const images = join(dir, 'scans');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  mkdirSync(images);
  const rng = new Random(9);
  for (let i = 0; i < 40; i++) {
    // blobs of random position and brightness on a dark background
    const px = new Uint8Array(28 * 28);
    const [cx, cy, v] = [4 + rng.int(20), 4 + rng.int(20), 120 + rng.int(130)];
    for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) px[y * 28 + x] = (x - cx) ** 2 + (y - cy) ** 2 < 30 ? v : rng.int(30);
    await sharp(Buffer.from(px), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(join(images, `scan${String(i).padStart(3, '0')}.png`));
  }
});

const small = { epochs: 1, batchSize: 12, evalBatchSize: 16, warmupEpochs: 0, workers: 0, seed: 2 };

describe('pretraining on a flat folder of unlabelled images', () => {
  it('mae and dino both train on it; supervised training refuses it', async () => {
    const mae = await train(resolveTrainConfig({
      ...small, dataset: images, model: 'mae_vit_tiny_patch4_28', method: 'mae', output: join(dir, 'mae'),
      modelKwargs: { embed_dim: 32, depth: 1, num_heads: 2, decoder_embed_dim: 16, decoder_depth: 1, decoder_num_heads: 2 },
    }));
    expect(mae.status).toBe('completed');
    expect(Number.isFinite(mae.metrics[0]!.eval_loss!)).toBe(true);
    expect(readStateDict(join(mae.runDir, 'last.safetensors')).state['decoder_pred.weight']).toBeDefined();

    const dino = await train(resolveTrainConfig({
      ...small, dataset: images, model: 'dino_vit_tiny_patch4_28', method: 'dino', output: join(dir, 'dino'), localCrops: 2, clipGrad: 3, hflip: 0,
      modelKwargs: { embed_dim: 32, depth: 1, num_heads: 2, out_dim: 32, hidden_dim: 32, bottleneck_dim: 16 },
    }));
    expect(dino.status).toBe('completed');
    expect(Number.isFinite(dino.metrics[0]!.train_loss)).toBe(true);
    expect(readStateDict(join(dino.runDir, 'last.safetensors')).state['head.last_layer.weight_v']).toBeDefined();

    await expect(train(resolveTrainConfig({ ...small, dataset: images, output: join(dir, 'sup') }))).rejects.toThrow(/no class subfolders/);
  }, 60_000);
});
