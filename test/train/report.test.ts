/** The training report: four files in the run directory, real PNGs, a page that shows the numbers. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { confusionClasses } from '../../src/train/charts.js';
import { type EpochMetrics, type ReportInput, writeReport } from '../../src/train/report.js';

const classNames = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

const epoch = (e: number): EpochMetrics => ({
  epoch: e, step: e * 100, lr: 1e-3 / e, train_loss: 2.3 / e, eval_loss: 2.1 / e,
  eval_top1: 0.2 * e, eval_top5: 0.5 + 0.1 * e, ema_top1: 0.19 * e, images_per_second: 1234.5, seconds: 41.2,
});

// Mostly diagonal, with cats and dogs confused.
const confusion = classNames.map((_, t) => classNames.map((_, p) => (t === p ? 80 : 2) + (t === 3 && p === 5 ? 30 : 0)));

const input = (epochs: number): ReportInput => ({
  runName: 'vit-tiny-cifar10', model: 'vit_tiny_patch4_32', classNames,
  metrics: Array.from({ length: epochs }, (_, i) => epoch(i + 1)),
  confusion,
  config: { model: 'vit_tiny_patch4_32', epochs: 3, optimizer: { name: 'adamw', lr: 0.001 }, mixup: [0.8, 1], note: '<b>' },
});

const dir = mkdtempSync(join(tmpdir(), 'tessera-report-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('writeReport', () => {
  it('writes the three charts as PNGs and a page that shows the metrics and references the charts', async () => {
    const out = await writeReport(dir, input(3));
    expect(out.html).toBe(join(dir, 'report.html'));
    expect(out.pngs).toEqual(['loss.png', 'accuracy.png', 'confusion.png'].map((f) => join(dir, f)));
    // Atomic writes leave no temp files behind.
    expect(readdirSync(dir).sort()).toEqual(['accuracy.png', 'confusion.png', 'loss.png', 'report.html']);
    for (const png of out.pngs) {
      const meta = await sharp(png).metadata();
      expect(meta.format, png).toBe('png');
      expect(meta.width, png).toBeGreaterThan(200);
      expect(meta.height, png).toBeGreaterThan(200);
    }
    const html = readFileSync(out.html, 'utf8');
    expect(html).toContain('<title>vit-tiny-cifar10 — training report</title>');
    for (const f of ['loss.png', 'accuracy.png', 'confusion.png']) expect(html).toMatch(new RegExp(`<img src="${f}" alt="[^"]{20,}"`));
    // train loss, eval loss, lr, eval top-1/top-5, EMA top-1 of epoch 3
    for (const v of ['0.7667', '0.7000', '3.33e-4', '60.00%', '80.00%', '57.00%', '1234.5', '300']) expect(html).toContain(v);
    // config: nested keys dotted, values escaped
    expect(html).toContain('<th scope="row">optimizer.lr</th><td>0.001</td>');
    expect(html).toContain('<td>&lt;b&gt;</td>');
    expect(html).toContain('cat predicted as dog (32 images)');
    expect(html).not.toContain('Robust top-1'); // absent columns are left out
  });

  it('overwrites the report on the next epoch', async () => {
    await writeReport(dir, input(4));
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).toContain('<th scope="row">4</th>');
    expect(html).toContain('80.00%'); // eval top-1 at epoch 4
    expect(readdirSync(dir)).toHaveLength(4);
  });

  it('still writes every file before the first evaluation', async () => {
    const early = join(dir, 'early');
    const out = await writeReport(early, { runName: 'early', model: 'm', classNames, metrics: [] });
    expect(readdirSync(early).sort()).toEqual(['accuracy.png', 'confusion.png', 'loss.png', 'report.html']);
    expect(readFileSync(out.html, 'utf8')).toContain('No configuration recorded.');
  });

  it('rejects a confusion matrix that does not match the class names', async () => {
    await expect(writeReport(join(dir, 'bad'), { ...input(1), confusion: [[1, 2], [3, 4]] })).rejects.toThrow(/confusion has 2 rows, expected 10/);
  });

  it('keeps the most-confused classes of a large confusion matrix, in class order', () => {
    const c = Array.from({ length: 50 }, (_, t) => Array.from({ length: 50 }, (_, p) => (t === p ? 100 : t === 7 && p === 42 ? 9 : 0)));
    expect(confusionClasses(c, 2)).toEqual([7, 42]);
    expect(confusionClasses(c)).toHaveLength(40);
  });
});
