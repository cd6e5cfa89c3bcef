/**
 * `tessera train` and `tessera eval` on an image folder, run as a user runs them: a train/ + val/
 * tree of Fashion-MNIST PNGs and JPEGs with an unreadable file in each part.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readStateDict } from '../../src/checkpoint/checkpoint.js';
import { writeFashionFolder } from '../data/image_folder_fixture.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-imgtrain-'));
const data = join(dir, 'fashion');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

beforeAll(async () => {
  // 60 images per class: the first 48 of each class folder go to train/, the rest to val/
  await writeFashionFolder(join(dir, 'all'), 60);
  for (const cls of readdirSync(join(dir, 'all'))) {
    const files = readdirSync(join(dir, 'all', cls)).sort();
    for (const part of ['train', 'val']) mkdirSync(join(data, part, cls), { recursive: true });
    files.forEach((f, i) => renameSync(join(dir, 'all', cls, f), join(data, i < 48 ? 'train' : 'val', cls, f)));
  }
  writeFileSync(join(data, 'train', 'Bag', 'broken.jpg'), Buffer.from('not a jpeg'));
  writeFileSync(join(data, 'val', 'Bag', 'broken.png'), Buffer.alloc(10));
}, 60_000);

const metricsOf = (run: string) => readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

describe('training on an image folder', () => {
  const run = join(dir, 'run');

  it('trains on train/, evaluates on val/, skips and counts unreadable files', async () => {
    // timm's RandomResizedCrop and colour jitter are made for photos, not 28×28 garments: flips only
    const r = await runCli(['train', '--dataset', data, '--epochs', '6', '--batch-size', '32', '--lr', '2e-3', '--warmup-epochs', '0.5',
      '--scale', '1,1', '--ratio', '1,1', '--color-jitter', '0', '--workers', '1', '--output', run, '--json']);
    expect(r.stderr).toContain('481 training and 121 validation (folder) images, 10 classes');
    // the chosen augmentation is printed; every size-aware key was given, so no note
    expect(r.stderr).toContain('augmentation: RandomResizedCrop scale 1,1 ratio 1,1, hflip 0.5, colour jitter 0\n');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/skipping an unreadable image.*broken\.jpg/);
    expect(r.stderr).toMatch(/skipping an unreadable image.*broken\.png/);
    const m = metricsOf(run);
    expect(m).toHaveLength(6);
    expect(m[0].skipped_files).toBe(2);
    // each file is reported once, not once per epoch
    expect(r.stderr.match(/broken\.jpg/g)).toHaveLength(1);
    // measured 0.19 → 0.40 over the 6 epochs on 480 images (chance is 0.10)
    expect(m[5].eval_top1).toBeGreaterThan(0.25);
    expect(m[5].eval_top1).toBeGreaterThan(m[0].eval_top1);
    expect(JSON.parse(r.stdout).top1).toBeCloseTo(m[5].eval_top1, 12);
  }, 180_000);

  it('`eval --dataset folder` evaluates the val/ part with the model\'s eval transform and agrees with training', async () => {
    const r = await runCli(['eval', '--checkpoint', join(run, 'last.safetensors'), '--dataset', data, '--workers', '0', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.count).toBe(120);
    expect(out.skippedFiles).toBe(1);
    expect(out.top1).toBeCloseTo(metricsOf(run)[5].eval_top1, 12);
  }, 60_000);

  it('--strict stops at the first unreadable file and names it', async () => {
    const r = await runCli(['train', '--dataset', data, '--epochs', '1', '--batch-size', '32', '--strict', '--workers', '1', '--output', join(dir, 'strict')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/tessera: .*broken\.(jpg|png)/);
  }, 60_000);

  it('a folder with no validation part gets a 10% stratified hold-out, and --val-split 0 is refused', async () => {
    const r = await runCli(['train', '--dataset', join(data, 'train'), '--epochs', '1', '--train-limit', '64', '--eval-limit', '20', '--workers', '0', '--output', join(dir, 'split')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('holding out 10% of each class');
    // 48 per class (49 in Bag with the broken file) → 5 held out per class
    expect(r.stderr).toMatch(/431 training and 50 validation \(split\) images/);
    // no augmentation flags: 28×28 inputs get no zoom and no jitter instead of timm's photo defaults, and the log says so
    expect(r.stderr).toContain("augmentation: RandomResizedCrop scale 1,1 ratio 1,1, hflip 0.5, colour jitter 0 (the model input 28×28 is small: no zoom, aspect change or colour jitter by default; timm's photo defaults are --scale 0.08,1 --ratio 0.75,1.333 --color-jitter 0.4)");
    expect(JSON.parse(readFileSync(join(dir, 'split', 'config.json'), 'utf8')).scale).toBeUndefined();
    const refused = await runCli(['train', '--dataset', join(data, 'train'), '--val-split', '0', '--output', join(dir, 'nosplit')]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/tessera: .*no validation folder.*--val-split/);
  }, 60_000);

  it('`eval` on the folder a run split scores its held-out part (--split all: every image); another folder is scored whole', async () => {
    const ckpt = join(dir, 'split', 'last.safetensors');
    const heldOut = JSON.parse(readStateDict(ckpt).metadata.tessera!).heldOut;
    expect(heldOut).toEqual({ dataset: join(data, 'train'), valSplit: 0.1, seed: 42, images: 481 });
    const evalOn = (folder: string, ...more: string[]) => runCli(['eval', '--checkpoint', ckpt, '--dataset', folder, '--workers', '0', '--json', ...more]);
    const copy = join(dir, 'copy');
    cpSync(join(data, 'train'), copy, { recursive: true });
    const [same, limited, all, other] = await Promise.all([evalOn(join(data, 'train')), evalOn(join(data, 'train'), '--limit', '20'), evalOn(join(data, 'train'), '--split', 'all'), evalOn(copy)]);
    for (const r of [same, limited, all, other]) expect(r.code, r.stderr).toBe(0);
    const counted = (r: { stdout: string }) => { const o = JSON.parse(r.stdout); return o.count + (o.skippedFiles ?? 0); };
    // 5 of each class's 48 (49 in Bag) held out
    expect(counted(same)).toBe(50);
    expect(same.stderr).toContain(`scoring the 50 images training held out of ${join(data, 'train')} (val split 0.1, seed 42`);
    // --limit 20 picks the 20 that --eval-limit 20 evaluated during training
    expect(JSON.parse(limited.stdout).top1).toBeCloseTo(metricsOf(join(dir, 'split'))[0].eval_top1, 12);
    expect(counted(all)).toBe(481);
    expect(counted(other)).toBe(481);
    expect(other.stderr).toContain(`${copy} has no validation part and ${ckpt} records no hold-out of it: scoring all 481 images`);
  }, 120_000);

  it('names a dataset that is neither built in nor on disk', async () => {
    const r = await runCli(['train', '--dataset', join(dir, 'nowhere'), '--output', join(dir, 'none')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/tessera: dataset .*nowhere is neither a built-in dataset \(fashion-mnist.*\) nor an existing image folder or manifest/);
  });
});
