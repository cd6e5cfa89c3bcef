/**
 * `tessera import-run`: a timm train.py output made by scripts/make_timm_run_fixture.py (timm
 * aa4b5850, Debian torch 1.13) becomes a tessera run whose checkpoint gives timm's logits; and a
 * tessera model converted to timm's layout loads strictly into timm.create_model with the same
 * logits (computed in that script, checked here against tessera).
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.js';
import type { ImageModel } from '../../src/models/model.js';
import { createModel } from '../../src/models/registry.js';
import { compile } from '../../src/runtime/compile.js';
import { importTimmRun } from '../../src/train/import_run.js';
import { runCli } from '../helpers/cli.js';
import { deterministicInput } from '../helpers/fixtures.js';
import { maxAbsDiff } from '../checkpoint/layout_helpers.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/timm_run', import.meta.url));
const ref = JSON.parse(readFileSync(join(FIXTURE, 'reference.json'), 'utf8')) as Record<'import' | 'round_trip', { input_shape: number[]; logits: number[] }>;
const dir = mkdtempSync(join(tmpdir(), 'tessera-import-run-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function logitsOf(model: ImageModel, shape: number[]): Promise<Float32Array> {
  const [b, c, h, w] = shape as [number, number, number, number];
  const exe = await compile((x) => model.forward(x).logits, [{ name: 'x', shape: ['batch', c, h, w] }], { params: 'initializers', threads: 1 });
  try {
    return (await exe.run({ x: deterministicInput(b * c * h * w) })).output!.data as Float32Array;
  } finally {
    await exe.dispose();
  }
}

describe('tessera import-run', () => {
  it('model_best.pth.tar → best.safetensors with timm\'s logits, args.yaml\'s preprocessing, summary.csv as metrics.jsonl, a report', async () => {
    const runDir = join(dir, 'run');
    const r = await importTimmRun(FIXTURE, { output: runDir });
    expect(r.checkpoint).toBe(join(FIXTURE, 'model_best.pth.tar'));
    const { model, meta } = loadCheckpoint(join(runDir, 'best.safetensors'));
    expect(maxAbsDiff(await logitsOf(model, ref.import.input_shape), ref.import.logits)).toBeLessThanOrEqual(1e-4);
    expect(meta).toMatchObject({ inputSize: [1, 16, 16], mean: [0.5], std: [0.25], cropPct: 1, interpolation: 'bilinear', epoch: 2, classNames: ['0', '1', '2'] });
    expect(meta.config).toMatchObject({ embedDim: 8, depth: 2, numHeads: 2, patchSize: 4, mlpRatio: 2, globalPool: 'avg', numClasses: 3 });
    const metrics = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(metrics).toEqual([
      { epoch: 1, step: 0, lr: 0.0005, train_loss: 1.25, eval_loss: 1.125, eval_top1: 0.33, eval_top5: 1 },
      { epoch: 2, step: 0, lr: 0.001, train_loss: 1, eval_loss: 0.875, eval_top1: 0.665, eval_top5: 1 },
    ]);
    expect(readFileSync(join(runDir, 'report.html'), 'utf8')).toContain('imported from timm');
    expect(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8'))).toMatchObject({ epochs: 2, batchSize: 4, lr: 0.001, numClasses: 3 });
  }, 30_000);

  it('without model_best: the highest checkpoint-<epoch>.pth.tar; refuses a directory without args.yaml', async () => {
    const src = join(dir, 'timm-out');
    cpSync(FIXTURE, src, { recursive: true });
    renameSync(join(src, 'model_best.pth.tar'), join(src, 'checkpoint-1.pth.tar'));
    const r = await importTimmRun(src, { output: join(dir, 'run2') });
    expect(r.checkpoint).toBe(join(src, 'checkpoint-1.pth.tar'));
    const { model } = loadCheckpoint(join(r.runDir, 'last.safetensors'));
    expect(maxAbsDiff(await logitsOf(model, ref.import.input_shape), ref.import.logits)).toBeLessThanOrEqual(1e-4);
    rmSync(join(src, 'args.yaml'));
    await expect(importTimmRun(src, { output: join(dir, 'run3') })).rejects.toThrow(/no args\.yaml; expected a timm train\.py output directory/);
    expect(existsSync(join(dir, 'run3'))).toBe(false);
  }, 30_000);

  it('the imported run exports like any tessera run (CLI)', async () => {
    const runDir = join(dir, 'run-cli');
    const a = await runCli(['import-run', FIXTURE, '--output', runDir, '--json']);
    expect(a.code, a.stderr).toBe(0);
    expect(JSON.parse(a.stdout)).toMatchObject({ runDir, epochs: 2, best: { epoch: 2, eval_top1: 0.665 } });
    const b = await runCli(['export', '--checkpoint', join(runDir, 'best.safetensors'), '--out', join(dir, 'imported.onnx'), '--samples', '2', '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout).check.maxAbsDiff).toBeLessThanOrEqual(1e-5);
  }, 60_000);

  it('round trip: tessera vit_tiny_patch4_28 → timm layout → timm.create_model + load_state_dict(strict) gives tessera\'s logits', async () => {
    const model = createModel('vit_tiny_patch4_28', { seed: 7 });
    expect(maxAbsDiff(await logitsOf(model, ref.round_trip.input_shape), ref.round_trip.logits)).toBeLessThanOrEqual(1e-4);
  }, 30_000);
});
