import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { openImageDataset } from '../../src/data/datasets/folder_dataset.js';
import { channelStats } from '../../src/data/stats/channel_stats.js';
import { trainingPreprocessing } from '../../src/train/dataset_stats.js';

// NumPy's mean/std (ddof=0) over every pixel of the fixture folder (scripts/make_multispectral_goldens.py)
const DIR = join(__dirname, '../fixtures/multispectral');
const golden = JSON.parse(readFileSync(join(DIR, 'goldens.json'), 'utf8')).stats as { mean: number[]; std: number[]; pixels: number; images: number };
const tmp = mkdtempSync(join(tmpdir(), 'tessera-stats-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('tessera stats', () => {
  it('per-channel mean/std of a 4-band 16-bit folder equal NumPy\'s, with progress', async () => {
    const seen: number[] = [];
    const s = await channelStats(openImageDataset(join(DIR, 'stats_ds')).train.paths, (done) => seen.push(done));
    expect(seen).toEqual([1, 2, 3]);
    expect([s.channels, s.pixels, s.images]).toEqual([4, golden.pixels, golden.images]);
    for (let c = 0; c < 4; c++) {
      expect(Math.abs(s.mean[c]! - golden.mean[c]!)).toBeLessThan(1e-7);
      expect(Math.abs(s.std[c]! - golden.std[c]!)).toBeLessThan(1e-7);
    }
  }, 15_000);

  it('--out writes the file train --stats reads: its mean/std become the transform\'s, and its channel count the model\'s', async () => {
    const out = join(tmp, 'stats.json');
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['stats', '--dataset', join(DIR, 'stats_ds'), '--out', out])).toBe(0);
    } finally {
      log.mockRestore();
      err.mockRestore();
    }
    const pre = { inputSize: [3, 32, 32], mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5] };
    const p = trainingPreprocessing(pre, { stats: out });
    expect(p.channels).toBe(4);
    expect(Math.max(...p.mean.map((m, c) => Math.abs(m - golden.mean[c]!)))).toBeLessThan(1e-7);
    expect(() => trainingPreprocessing(pre, { stats: out, modelKwargs: { inChans: 3 } })).toThrow(/has 4 channels but the model has in_chans 3/);
    // without a stats file a 4-channel model repeats the architecture's average
    expect(trainingPreprocessing({ ...pre, mean: [0.4, 0.5, 0.6] }, { modelKwargs: { inChans: 4 } }).mean).toEqual([0.5, 0.5, 0.5, 0.5].map((v) => expect.closeTo(v, 12)));
    writeFileSync(join(tmp, 'bad.json'), '{"mean": [1]}');
    expect(() => trainingPreprocessing(pre, { stats: join(tmp, 'bad.json') })).toThrow(/^--stats .*bad\.json: expected/);
  }, 15_000);
});
