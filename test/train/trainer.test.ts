/**
 * The training loop on real data (Debian's Fashion-MNIST): it learns, it resumes exactly, and a
 * diverging run stops with the last good checkpoint intact.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset, type TensorDataset } from '../../src/data/datasets/dataset.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train, TrainingDivergedError } from '../../src/train/trainer.js';
import { readStateDict } from '../../src/checkpoint/checkpoint.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-train-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let data: { train: TensorDataset; test: TensorDataset };
beforeAll(async () => {
  const [trainSet, testSet] = [await loadBuiltinDataset('fashion-mnist', 'train'), await loadBuiltinDataset('fashion-mnist', 'test')];
  data = { train: sliceDataset(trainSet, 0, 2000), test: sliceDataset(testSet, 0, 1000) };
});

describe('training on a 2,000-image slice of Fashion-MNIST', () => {
  // Measured: 0.52 test top-1 (1,000 test images) after these 3 epochs; a ViT from scratch needs
  // more data than 2,000 images to go further, so the threshold leaves a 10-point margin.
  it('beats 42% test accuracy after 3 short epochs', async () => {
    const cfg = resolveTrainConfig({ epochs: 3, batchSize: 32, lr: 1e-3, warmupEpochs: 0.2, output: join(dir, 'short') });
    const r = await train(cfg, { datasets: data });
    expect(r.status).toBe('completed');
    expect(r.metrics[2]!.eval_top1!).toBeGreaterThan(0.42);
    expect(r.metrics[2]!.eval_top1!).toBeGreaterThan(r.metrics[0]!.eval_top1!);
    for (const f of ['config.json', 'metrics.jsonl', 'last.safetensors', 'best.safetensors', 'state.safetensors']) {
      expect(existsSync(join(r.runDir, f)), f).toBe(true);
    }
    const lines = readFileSync(join(r.runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.epoch)).toEqual([1, 2, 3]);
    expect(lines[2].eval_top1).toBeCloseTo(r.metrics[2]!.eval_top1!, 10);
    // measured alone: 34 s of CPU; 59 s and 80 s of wall time with the 2-core machine shared (load
    // 7-8), where vitest's 120 s default failed at load 9: room for about 3x the loaded time
  }, 300_000);
});

describe('resume', () => {
  const small = () => ({ train: sliceDataset(data.train, 0, 640), test: sliceDataset(data.test, 0, 200) });
  const base = { epochs: 2, batchSize: 64, dropPath: 0.1, reprob: 0.25, cropPadding: 2, modelEma: true, seed: 7 };

  it('continues a run killed mid-epoch to the same weights as an uninterrupted run', async () => {
    const straight = await train(resolveTrainConfig({ ...base, output: join(dir, 'straight') }), { datasets: small() });

    const controller = new AbortController();
    const killed = await train(resolveTrainConfig({ ...base, output: join(dir, 'killed') }), {
      datasets: small(),
      signal: controller.signal,
      // stop in the middle of the second epoch
      events: { onStep: (s) => { if (s.epoch === 2 && s.batch === 4) controller.abort(); } },
    });
    expect(killed.status).toBe('interrupted');
    const resumed = await train(resolveTrainConfig({ ...base, output: join(dir, 'killed') }), { datasets: small(), resume: killed.runDir });
    expect(resumed.status).toBe('completed');

    const a = readStateDict(join(straight.runDir, 'last.safetensors')).state;
    const b = readStateDict(join(resumed.runDir, 'last.safetensors')).state;
    let maxDiff = 0;
    for (const [k, t] of Object.entries(a)) {
      const u = b[k]!.data;
      for (let i = 0; i < t.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(t.data[i]! - u[i]!));
    }
    expect(maxDiff).toBeLessThan(1e-6);
    expect(resumed.metrics.map((m) => m.eval_top1)).toEqual(straight.metrics.map((m) => m.eval_top1));
    expect(Math.abs(resumed.metrics[1]!.train_loss - straight.metrics[1]!.train_loss)).toBeLessThan(1e-6);
  });

  it('stops on a NaN/Inf loss and keeps the last good checkpoint', async () => {
    const out = join(dir, 'diverge');
    await train(resolveTrainConfig({ epochs: 1, batchSize: 64, output: out }), { datasets: small() });
    const before = readStateDict(join(out, 'last.safetensors')).state;
    const wild = resolveTrainConfig({ epochs: 2, batchSize: 64, output: out, lr: 1e30, sched: 'constant', warmupEpochs: 0 });
    await expect(train(wild, { datasets: small(), resume: out })).rejects.toThrow(TrainingDivergedError);
    const after = readStateDict(join(out, 'last.safetensors')).state;
    expect(Object.values(after).every((t) => t.data.every(Number.isFinite))).toBe(true);
    expect(Array.from(after['head.weight']!.data)).toEqual(Array.from(before['head.weight']!.data));
  });
});
