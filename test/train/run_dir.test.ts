/**
 * The run directory around its commits (issue #22): an existing run is not overwritten without
 * --overwrite, default directories do not collide, a damaged commit is named on resume, a
 * directory from before commits is adopted without changing a byte (and refused when its
 * last/state disagree), and divergence before the first commit says nothing was saved.
 */
import { cpSync, existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { resolveTrainConfig } from '../../src/train/config.js';
import { claimNewRunDir, COMMITTED_FILES, readMetrics, recoverRunDir, runFiles } from '../../src/train/run_dir.js';
import { train, TrainingDivergedError } from '../../src/train/trainer.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-rundir-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const tiny = { modelKwargs: { embed_dim: 24, depth: 1, num_heads: 2 }, trainLimit: 256, evalLimit: 64, batchSize: 64, threads: 1 };
const quiet = { events: { log: () => {} } };
const legacy = join(import.meta.dirname, '..', 'fixtures', 'legacy', 'run');

describe('a new run', () => {
  it('refuses an --output that holds a run, naming --resume and --overwrite; --overwrite replaces it', async () => {
    const out = join(dir, 'taken');
    await train(resolveTrainConfig({ ...tiny, epochs: 2, output: out }), quiet);
    await expect(train(resolveTrainConfig({ ...tiny, epochs: 1, output: out }), quiet))
      .rejects.toThrow(`--output ${out} already holds a training run; continue it with --resume ${out}, or pass --overwrite to replace it`);
    expect(readMetrics(runFiles(out)).map((r) => r.epoch)).toEqual([1, 2]);
    const r = await train(resolveTrainConfig({ ...tiny, epochs: 1, seed: 3, output: out }), { ...quiet, overwrite: true });
    expect(r.status).toBe('completed');
    expect(readMetrics(runFiles(out)).map((m) => m.epoch)).toEqual([1]);
    expect(readlinkSync(join(out, 'current'))).toBe('commits/epoch-1');
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).seed).toBe(3);
  }, 90_000);

  it('gets its own default directory when another run started in the same second', () => {
    const base = join(dir, 'runs', 'vit-fashion-mnist-20250101-120000');
    expect([claimNewRunDir(base), claimNewRunDir(base), claimNewRunDir(base)]).toEqual([base, `${base}-2`, `${base}-3`]);
  });

  it('diverging before its first epoch ends says that nothing was saved', async () => {
    const out = join(dir, 'wild');
    const wild = resolveTrainConfig({ ...tiny, epochs: 1, lr: 1e30, sched: 'constant', warmupEpochs: 0, output: out });
    const error = await train(wild, quiet).then(() => undefined, (e: Error) => e);
    expect(error).toBeInstanceOf(TrainingDivergedError);
    expect(error!.message).toMatch(/^training diverged: the loss is \S+ at epoch 1, batch \d; nothing was saved \(the first epoch had not ended\)/);
    expect(existsSync(join(out, 'last.safetensors'))).toBe(false);
    // --resume then starts it from the beginning (and diverges the same way)
    await expect(train(wild, { ...quiet, resume: out })).rejects.toThrow('nothing was saved');
  }, 60_000);
});

describe('resuming', () => {
  it('names a committed file that changed after its commit', async () => {
    const out = join(dir, 'damaged');
    await train(resolveTrainConfig({ ...tiny, epochs: 1, output: out }), quiet);
    const state = join(out, 'commits', 'epoch-1', 'state.safetensors');
    const bytes = readFileSync(state);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(state, bytes);
    expect(() => recoverRunDir(runFiles(out))).toThrow(new RegExp(`^cannot resume ${out}: ${state} has ${bytes.length} bytes \\(SHA-256 [0-9a-f]{12}…\\) but commit.json records ${bytes.length} \\([0-9a-f]{12}…\\)`));
  }, 60_000);

  it('adopts a directory from before commits as its first commit, every file the same bytes', () => {
    const run = join(dir, 'legacy');
    cpSync(legacy, run, { recursive: true });
    writeFileSync(join(run, '.state.safetensors.12345.tmp'), 'torn');
    const record = recoverRunDir(runFiles(run));
    expect(record?.id).toBe('epoch-2-batch-2');
    expect(readlinkSync(join(run, 'current'))).toBe('commits/epoch-2-batch-2');
    expect(existsSync(join(run, '.state.safetensors.12345.tmp'))).toBe(false);
    for (const name of COMMITTED_FILES) {
      if (!existsSync(join(legacy, name))) continue;
      expect(lstatSync(join(run, name)).isSymbolicLink(), name).toBe(true);
      expect(readFileSync(join(run, name)).equals(readFileSync(join(legacy, name))), name).toBe(true);
    }
  });

  it('refuses a directory from before commits whose last and state are from different epochs', () => {
    const run = join(dir, 'legacy-torn');
    cpSync(legacy, run, { recursive: true });
    const { model, meta } = loadCheckpoint(join(run, 'last.safetensors'));
    saveCheckpoint(join(run, 'last.safetensors'), model, { ...meta, epoch: 2 });
    expect(() => recoverRunDir(runFiles(run))).toThrow(`cannot resume ${run}: last.safetensors is from epoch 2 but state.safetensors from epoch 1`);
  });
});
