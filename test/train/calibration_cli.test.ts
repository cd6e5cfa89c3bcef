/**
 * Temperature scaling end to end on a binary image folder (Trouser vs Bag, no val/ part, so
 * training holds out a seeded 25%): `train` fits T on the held-out part and stores it; `eval`
 * reports the metrics with ECE before/after; `predict`, `export` (ORT) and `serve`'s graph divide
 * the logits by T; `calibrate` refits it; a checkpoint without T predicts as before.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { inspectOnnxModel } from '../../src/runtime/onnx_model.js';
import { loadServedModel } from '../../src/serve/model_source.js';
import { writeFashionFolder } from '../data/image_folder_fixture.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-calib-'));
const data = join(dir, 'binary');
const run = join(dir, 'run');
const plain = join(dir, 'plain.safetensors');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let trainLog = '';
let temperature = 0;
beforeAll(async () => {
  await writeFashionFolder(data, 40);
  for (const cls of readdirSync(data)) if (cls !== 'Trouser' && cls !== 'Bag') rmSync(join(data, cls), { recursive: true });
  const r = await runCli(['train', '--dataset', data, '--epochs', '2', '--batch-size', '16', '--lr', '2e-3', '--warmup-epochs', '0', '--val-split', '0.25',
    '--scale', '1,1', '--ratio', '1,1', '--color-jitter', '0', '--workers', '1', '--output', run, '--json']);
  expect(r.code, r.stderr).toBe(0);
  trainLog = r.stderr;
  const { model, meta } = loadCheckpoint(join(run, 'last.safetensors'));
  temperature = meta.temperature!;
  // the same weights without a temperature: a checkpoint from before calibration
  const { temperature: _t, ...old } = meta;
  saveCheckpoint(plain, model, old);
}, 240_000);

const json = (s: string) => JSON.parse(s.trim());
const image = () => join(data, 'Bag', readdirSync(join(data, 'Bag')).sort()[0]!);

describe('train --calibrate (default on image folders)', () => {
  it('fits T on the held-out part and stores it in last and best checkpoints', () => {
    expect(temperature).toBeGreaterThan(0);
    expect(temperature).not.toBe(1);
    expect(trainLog).toMatch(/epoch 2: temperature \d+\.\d{4} \(validation NLL/);
    expect(loadCheckpoint(join(run, 'best.safetensors')).meta.temperature).toBeGreaterThan(0);
  });

  it('--no-calibrate stores no temperature', async () => {
    const out = join(dir, 'uncalibrated');
    const r = await runCli(['train', '--dataset', data, '--epochs', '1', '--batch-size', '16', '--val-split', '0.25', '--workers', '1', '--no-calibrate', '--output', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/temperature/);
    expect(loadCheckpoint(join(out, 'last.safetensors')).meta.temperature).toBeUndefined();
  }, 120_000);

  it("writes the final evaluation's metrics and charts into report.html", () => {
    const html = readFileSync(join(run, 'report.html'), 'utf8');
    expect(html).toContain('Final evaluation');
    expect(html).toMatch(/Sensitivity \/ specificity at p\(Trouser\) ≥ 0\.5/);
    for (const f of ['roc.png', 'pr.png', 'reliability.png']) expect(existsSync(join(run, f))).toBe(true);
  });
});

describe('eval with a calibrated checkpoint', () => {
  it('reports metrics, ECE before and after T, and binary sensitivity/specificity at --threshold', async () => {
    const r = await runCli(['eval', '--checkpoint', join(run, 'last.safetensors'), '--dataset', data, '--workers', '0', '--json', '--threshold', '0.3', '--positive-class', 'Bag']);
    expect(r.code, r.stderr).toBe(0);
    const out = json(r.stdout);
    expect(out.count).toBe(20);
    const m = out.metrics;
    expect(m.calibration.temperature).toBe(temperature);
    expect(m.calibration.eceBefore).toBeGreaterThanOrEqual(0);
    // T minimises the NLL of exactly these images: the loss with it is no larger
    expect(m.calibration.nll).toBeLessThanOrEqual(out.loss + 1e-9);
    expect(m.perClass.map((c: any) => c.support)).toEqual([10, 10]);
    // accuracy per class (the tally's) is the recall (the metrics'): two independent counts
    m.perClass.forEach((c: any, k: number) => expect(c.recall).toBeCloseTo(out.perClass[k].accuracy, 12));
    expect(m.balancedAccuracy).toBeCloseTo((out.perClass[0].accuracy + out.perClass[1].accuracy) / 2, 12);
    expect(m.binary).toMatchObject({ positiveClass: 'Bag', threshold: 0.3 });
    expect(m.binary.tp + m.binary.fn).toBe(10);
    expect(m.binary.tn + m.binary.fp).toBe(10);
  }, 60_000);

  it('prints a compact table and the calibration line without --json; --report writes eval.html', async () => {
    const rep = join(dir, 'eval-report');
    const r = await runCli(['eval', '--checkpoint', join(run, 'last.safetensors'), '--dataset', data, '--workers', '0', '--report', rep]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/class +images +accuracy +precision +F1 +ROC-AUC +AP/);
    expect(r.stdout).toMatch(/expected calibration error \d\.\d{4} with the checkpoint's temperature/);
    expect(r.stdout).toMatch(/positive class Trouser, predicted at p ≥ 0\.5: sensitivity/);
    expect(readFileSync(join(rep, 'eval.html'), 'utf8')).toContain('Reliability diagram');
  }, 60_000);

  it('refuses a --positive-class that is not a class', async () => {
    const r = await runCli(['eval', '--checkpoint', plain, '--dataset', data, '--workers', '0', '--positive-class', 'Shirt']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--positive-class "Shirt" is neither a class of the checkpoint (Bag, Trouser)');
  }, 60_000);
});

describe('predict, export and calibrate use T', () => {
  let calibrated: number[] = [], raw: number[] = [];
  it('predict divides the logits by T; without T it is unchanged', async () => {
    const [a, b] = await Promise.all([
      runCli(['predict', image(), '--checkpoint', join(run, 'last.safetensors'), '--json']),
      runCli(['predict', image(), '--checkpoint', plain, '--json']),
    ]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    calibrated = json(a.stdout)[0].logits;
    raw = json(b.stdout)[0].logits;
    calibrated.forEach((v, k) => expect(Math.abs(v * temperature - raw[k]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(raw[k]!))));
  }, 60_000);

  it('export divides inside the graph: ORT logits match predict, metadata records T, eval multiplies back', async () => {
    const onnx = join(dir, 'cal.onnx');
    const e = await runCli(['export', '--checkpoint', join(run, 'last.safetensors'), '--out', onnx]);
    expect(e.code, e.stderr).toBe(0);
    expect(inspectOnnxModel(onnx).meta.temperature).toBe(temperature);
    const p = await runCli(['predict', image(), '--checkpoint', onnx, '--json']);
    expect(p.code, p.stderr).toBe(0);
    json(p.stdout)[0].logits.forEach((v: number, k: number) => expect(Math.abs(v - calibrated[k]!)).toBeLessThanOrEqual(1e-4));
    const [fromOnnx, fromCkpt] = await Promise.all([
      runCli(['eval', '--checkpoint', onnx, '--dataset', data, '--workers', '0', '--json']),
      runCli(['eval', '--checkpoint', plain, '--dataset', data, '--workers', '0', '--split', 'all', '--json']),
    ]);
    expect(fromOnnx.code, fromOnnx.stderr).toBe(0);
    expect(fromCkpt.code, fromCkpt.stderr).toBe(0);
    // the .onnx file records no hold-out: it scores all 80 images, as --split all does for the checkpoint without T
    const o = json(fromOnnx.stdout), c = json(fromCkpt.stdout);
    expect(o.count).toBe(80);
    expect(c.count).toBe(80);
    expect(c.metrics.calibration.temperature).toBeUndefined();
    expect(o.metrics.calibration.temperature).toBe(temperature);
    // eval takes the network's logits (multiplied back by T): its loss and uncalibrated ECE are the plain checkpoint's
    expect(Math.abs(o.loss - c.loss)).toBeLessThanOrEqual(1e-5);
    expect(Math.abs(o.metrics.calibration.eceBefore - c.metrics.calibration.ece)).toBeLessThanOrEqual(1e-5);
  }, 120_000);

  it("serve's graph (a checkpoint exported in memory) divides by T too", async () => {
    const [cal, old] = await Promise.all([loadServedModel({ checkpoint: join(run, 'last.safetensors') }), loadServedModel({ checkpoint: plain })]);
    try {
      expect(cal.meta.temperature).toBe(temperature);
      expect(old.meta.temperature).toBeUndefined();
      const x = Float32Array.from({ length: 2 * 28 * 28 }, (_, i) => Math.sin(0.37 * i));
      const [a, b] = await Promise.all([cal.run(x.slice()), old.run(x.slice())]);
      a.forEach((v, k) => expect(Math.abs(v * temperature - b[k]!)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(b[k]!))));
    } finally {
      await Promise.all([cal.dispose(), old.dispose()]);
    }
  }, 60_000);

  it('calibrate refits the same T on the same held-out images, in place or to --output', async () => {
    const out = join(dir, 'recal.safetensors');
    const r = await runCli(['calibrate', '--checkpoint', plain, '--dataset', data, '--workers', '0', '--output', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = json(r.stdout);
    expect(res.images).toBe(20);
    expect(Math.abs(res.temperature - temperature) / temperature).toBeLessThanOrEqual(1e-6);
    expect(res.nllAfter).toBeLessThanOrEqual(res.nllBefore);
    expect(loadCheckpoint(out).meta.temperature).toBe(res.temperature);
    expect(loadCheckpoint(plain).meta.temperature).toBeUndefined();
  }, 60_000);
});
