/**
 * MAE pretraining through the training loop (`--method mae`) on a 640-image slice of
 * Fashion-MNIST: the masked-patch loss falls, the run directory is train's, and a run killed
 * mid-epoch resumes to the same weights and losses as an uninterrupted run (the masks come from
 * the run's seeded stream).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset, type TensorDataset } from '../../src/data/datasets/dataset.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { readStateDict } from '../../src/checkpoint/checkpoint.js';
import sharp from 'sharp';

const dir = mkdtempSync(join(tmpdir(), 'tessera-mae-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let data: () => { train: TensorDataset; test: TensorDataset };
beforeAll(async () => {
  const [a, b] = [await loadBuiltinDataset('fashion-mnist', 'train'), await loadBuiltinDataset('fashion-mnist', 'test')];
  data = () => ({ train: sliceDataset(a, 0, 640), test: sliceDataset(b, 0, 128) });
});

const base = {
  model: 'mae_vit_tiny_patch4_28', method: 'mae', epochs: 2, batchSize: 64, lr: 1e-3, warmupEpochs: 0, seed: 3,
  modelKwargs: { embed_dim: 32, depth: 2, num_heads: 2, decoder_embed_dim: 32, decoder_depth: 1, decoder_num_heads: 2 },
};

describe('MAE pretraining through the training loop', () => {
  it('resumes a run killed mid-epoch to the same weights, and the loss falls', async () => {
    const straight = await train(resolveTrainConfig({ ...base, output: join(dir, 'straight') }), { datasets: data() });
    expect(straight.status).toBe('completed');
    const [e1, e2] = straight.metrics;
    expect(e2!.eval_loss!).toBeLessThan(e1!.eval_loss!);
    expect(e2!.train_loss).toBeLessThan(e1!.train_loss);
    // originals / masked / reconstructions of 8 evaluation images; the masked row is a quarter original, the rest mid-grey
    const png = sharp(join(straight.runDir, 'reconstruction.png'));
    expect(await png.metadata()).toMatchObject({ width: 8 * 28, height: 3 * 28 });
    const { data: px } = await png.greyscale().raw().toBuffer({ resolveWithObject: true });
    const row = (r: number) => Array.from({ length: 28 * 28 * 8 }, (_, i) => px[(r * 28 + Math.floor(i / 224)) * 224 + (i % 224)]!);
    const grey = row(1).filter((v) => Math.abs(v - 128) <= 1).length / (28 * 28 * 8);
    expect(grey).toBeGreaterThan(0.6);
    expect(row(0).filter((v) => Math.abs(v - 128) <= 1).length / (28 * 28 * 8)).toBeLessThan(0.2);
    // and report.html shows it, described, after the loss chart
    const html = readFileSync(join(straight.runDir, 'report.html'), 'utf8');
    expect(html).toMatch(/<img src="reconstruction.png" alt="8 evaluation images in three rows[^"]*" width="448" height="168"/);
    expect(html.indexOf('reconstruction.png')).toBeGreaterThan(html.indexOf('loss.png'));

    const controller = new AbortController();
    const killed = await train(resolveTrainConfig({ ...base, output: join(dir, 'killed') }), {
      datasets: data(), signal: controller.signal,
      events: { onStep: (s) => { if (s.epoch === 2 && s.batch === 4) controller.abort(); } },
    });
    expect(killed.status).toBe('interrupted');
    const resumed = await train(resolveTrainConfig({ ...base, output: join(dir, 'killed') }), { datasets: data(), resume: killed.runDir });
    expect(resumed.status).toBe('completed');
    const a = readStateDict(join(straight.runDir, 'last.safetensors')).state;
    const b = readStateDict(join(resumed.runDir, 'last.safetensors')).state;
    expect(Object.keys(b)).toEqual(Object.keys(a));
    expect(Object.keys(a)).toContain('decoder_pred.weight');
    let maxDiff = 0;
    for (const [k, t] of Object.entries(a)) for (let i = 0; i < t.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(t.data[i]! - b[k]!.data[i]!));
    expect(maxDiff).toBeLessThan(1e-6);
    expect(resumed.metrics.map((m) => m.eval_loss)).toEqual(straight.metrics.map((m) => m.eval_loss));
  }, 180_000);
});
