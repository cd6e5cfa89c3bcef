/** Buffers on a schedule (Performer's random features) are redrawn by training, and kept as saved by eval. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { sliceDataset } from '../../src/data/datasets/dataset.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { createModel } from '../../src/models/registry.js';
import { readStateDict } from '../../src/checkpoint/checkpoint.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-redraw-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('scheduled buffers in training', () => {
  it('Performer features are redrawn every feature_redraw_interval optimiser steps', async () => {
    const kwargs = { embedDim: 24, depth: 1, numHeads: 2, attnType: 'performer', featureRedrawInterval: 2 };
    const key = 'blocks.0.attn.fast_attention.projection_matrix';
    const initial = Float32Array.from(createModel('vit_tiny_patch4_28', { ...kwargs, numClasses: 10, seed: 4 }).stateDict()[key]!.data);
    const datasets = { train: sliceDataset(await loadBuiltinDataset('fashion-mnist', 'train'), 0, 320), test: sliceDataset(await loadBuiltinDataset('fashion-mnist', 'test'), 0, 64) };
    const run = (epochs: number, out: string) => train(resolveTrainConfig({ model: 'vit_tiny_patch4_28', modelKwargs: kwargs, epochs, batchSize: 64, seed: 4, threads: 1, output: join(dir, out) }), { datasets });
    // 5 optimiser steps: rounds 0, 0, 1, 1, 2 — the last step used round 2's features
    const r = await run(1, 'a');
    const saved = readStateDict(join(r.runDir, 'last.safetensors')).state[key]!.data;
    expect(saved.length).toBe(initial.length);
    expect(Array.from(saved)).not.toEqual(Array.from(initial));
    // the same run again draws the same features (a function of the seed, the module and the round)
    const again = readStateDict(join((await run(1, 'b')).runDir, 'last.safetensors')).state[key]!.data;
    expect(Array.from(again)).toEqual(Array.from(saved));
  }, 120_000);
});
