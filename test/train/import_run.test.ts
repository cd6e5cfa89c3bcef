/**
 * `tessera import-run`: a timm train.py output made by scripts/make_timm_run_fixture.py (timm
 * aa4b5850, Debian torch 1.13) becomes a tessera run whose checkpoint gives timm's logits; and a
 * tessera model converted to timm's layout loads strictly into timm.create_model with the same
 * logits (computed in that script, checked here against tessera).
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
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
const SWIN = fileURLToPath(new URL('../fixtures/timm_run_swin', import.meta.url));
const swinRef = JSON.parse(readFileSync(join(SWIN, 'reference.json'), 'utf8')).import as { input_shape: number[]; logits: number[]; ema_logits: number[] };
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

  it('a Swin run (not ViT) with EMA: the EMA weights by default with timm\'s EMA logits, the image size from args.yaml, class names from its --class-map', async () => {
    const r = await importTimmRun(SWIN, { output: join(dir, 'swin') });
    expect(r.weights).toBe('state_dict_ema');
    const { model, meta } = loadCheckpoint(join(r.runDir, 'best.safetensors'));
    expect(meta.family).toBe('swin');
    expect(meta.config).toMatchObject({ imgSize: 16, patchSize: 2, windowSize: 4, embedDim: 8, depths: [2, 2], numHeads: [2, 4], numClasses: 3 });
    expect(maxAbsDiff(await logitsOf(model, swinRef.input_shape), swinRef.ema_logits)).toBeLessThanOrEqual(1e-4);
    expect(meta.classNames).toEqual(['circle', 'square', 'triangle']);
    expect(r.classNamesFrom).toBe(`--class-map ${join(SWIN, 'classes.txt')}`);
    expect(r.notCarried.join('; ')).toMatch(/optimizer and LR scheduler state .*; the raw \(non-EMA\) weights \(import with --no-ema for them\)/);
    // predict on the imported Swin answers with the run's class names
    const png = join(dir, 'shape.png');
    await sharp(Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 37) % 256)), { raw: { width: 16, height: 16, channels: 1 } }).png().toFile(png);
    const p = await runCli(['predict', '--checkpoint', join(r.runDir, 'best.safetensors'), '--json', png]);
    expect(p.code, p.stderr).toBe(0);
    const top = JSON.parse(p.stdout)[0].top as { index: number; label: string }[];
    expect(top.map((t) => t.label).sort()).toEqual(['circle', 'square', 'triangle']);
    for (const t of top) expect(t.label).toBe(['circle', 'square', 'triangle'][t.index]);
  }, 60_000);

  it('--no-ema takes the raw weights (timm\'s raw logits); --ema without EMA weights is an error; a run without EMA takes state_dict', async () => {
    const raw = await importTimmRun(SWIN, { output: join(dir, 'swin-raw'), ema: false });
    expect(raw.weights).toBe('state_dict');
    expect(maxAbsDiff(await logitsOf(loadCheckpoint(join(raw.runDir, 'best.safetensors')).model, swinRef.input_shape), swinRef.logits)).toBeLessThanOrEqual(1e-4);
    expect((await importTimmRun(FIXTURE, { output: join(dir, 'vit-auto') })).weights).toBe('state_dict');
    await expect(importTimmRun(FIXTURE, { output: join(dir, 'vit-ema'), ema: true })).rejects.toThrow(/model_best\.pth\.tar: has no state_dict_ema state dict; it holds state_dict$/);
  }, 60_000);

  it('class names from the dataset\'s class folders in timm\'s natural order, or --class-names; a names file of the wrong length is an error', async () => {
    const src = join(dir, 'swin-folders');
    cpSync(SWIN, src, { recursive: true });
    const data = join(dir, 'shapes');
    for (const c of ['class10', 'Alpha', 'class9']) mkdirSync(join(data, 'train', c), { recursive: true });
    const yaml = readFileSync(join(src, 'args.yaml'), 'utf8');
    writeFileSync(join(src, 'args.yaml'), yaml.replace(/^class_map: .*$/m, "class_map: ''").replace(/^data_dir: .*$/m, `data_dir: ${data}`));
    const r = await importTimmRun(src, { output: join(dir, 'swin-folders-run') });
    expect(loadCheckpoint(join(r.runDir, 'best.safetensors')).meta.classNames).toEqual(['Alpha', 'class9', 'class10']);
    expect(r.classNamesFrom).toBe(`the class folders of ${join(data, 'train')}`);
    const names = join(dir, 'names.txt');
    writeFileSync(names, 'a\nb\nc\n');
    const given = await importTimmRun(src, { output: join(dir, 'swin-names'), classNames: names });
    expect(loadCheckpoint(join(given.runDir, 'best.safetensors')).meta.classNames).toEqual(['a', 'b', 'c']);
    writeFileSync(names, 'a\nb\n');
    await expect(importTimmRun(src, { output: join(dir, 'swin-bad'), classNames: names })).rejects.toThrow(`--class-names ${names}: 2 names, expected one per line for the model's 3 classes`);
    // nothing to read them from: the numbers, and the one line says why
    writeFileSync(join(src, 'args.yaml'), yaml.replace(/^class_map: .*$/m, "class_map: ''"));
    const c = await runCli(['import-run', src, '--output', join(dir, 'swin-cli')]);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toContain('class names: the class numbers');
    expect(c.stdout.split('\n').filter((l) => l.startsWith('not carried: '))).toEqual([expect.stringMatching(/class names \(the dataset folder \/datasets\/shapes is not on this machine; .*pass --class-names FILE\)/)]);
  }, 60_000);

  it('a ConViT run with --gp avg: the pooling (not in the weights) from args.yaml, timm\'s logits; no summary.csv, no EMA', async () => {
    const src = fileURLToPath(new URL('../fixtures/timm_run_convit', import.meta.url));
    const ref = JSON.parse(readFileSync(join(src, 'reference.json'), 'utf8')).import as { input_shape: number[]; logits: number[] };
    const r = await importTimmRun(src, { output: join(dir, 'convit') });
    expect(r).toMatchObject({ checkpoint: join(src, 'checkpoint-0.pth.tar'), weights: 'state_dict', epochs: 0 });
    const { model, meta } = loadCheckpoint(join(r.runDir, 'last.safetensors'));
    expect(meta.family).toBe('convit');
    expect(meta.config).toMatchObject({ globalPool: 'avg', imgSize: 16, embedDim: 8, numHeads: 2, depth: 2, localUpToLayer: 1, numClasses: 4 });
    expect(maxAbsDiff(await logitsOf(model, ref.input_shape), ref.logits)).toBeLessThanOrEqual(1e-4);
  }, 60_000);

  it('a real train.py output of a tessera torchrun job (scripts/make_timm_train_fixture.py): tessera eval of the import gives the eval loss and top-1 timm wrote for the EMA weights', async () => {
    const src = fileURLToPath(new URL('../fixtures/timm_train', import.meta.url));
    const names = join(dir, 'shapes.txt');
    writeFileSync(names, 'circle\nsquare\n');
    const summary = readFileSync(join(src, 'summary.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(',').map(Number));
    const evalOf = async (ema: boolean) => {
      const runDir = join(dir, `real-${ema}`);
      const r = await importTimmRun(src, { output: runDir, classNames: names, ema });
      const e = await runCli(['eval', '--checkpoint', join(runDir, 'best.safetensors'), '--dataset', join(src, 'val'), '--json']);
      expect(e.code, e.stderr).toBe(0);
      return { r, result: JSON.parse(e.stdout) as { loss: number; top1: number; count: number } };
    };
    const ema = await evalOf(true);
    expect(ema.r).toMatchObject({ weights: 'state_dict_ema', epochs: summary.length, classNamesFrom: names });
    const row = summary[ema.r.best!.epoch - 1]!; // epoch,train_loss,eval_loss,eval_top1,…: model_best's epoch
    expect(ema.result.count).toBe(12);
    expect(Math.abs(ema.result.loss - row[2]!)).toBeLessThanOrEqual(1e-5);
    expect(ema.result.top1).toBeCloseTo(row[3]! / 100, 6);
    // the raw weights are another model: their loss is not the one timm reported
    const raw = await evalOf(false);
    expect(raw.r.weights).toBe('state_dict');
    expect(Math.abs(raw.result.loss - row[2]!)).toBeGreaterThan(1e-4);
  }, 120_000);
});
