/**
 * `tessera predict` on many images: batched and streamed (2,000 images on the command line used
 * to crash with a segmentation fault), directories and glob patterns, and an unreadable image
 * among readable ones (the others are answered, the bad one named, exit 1).
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metaFor, saveCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { imagePathsOf, segmentMatcher } from '../../src/data/datasets/image_paths.js';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { createModel } from '../../src/models/registry.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'tessera-predict-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const ckpt = join(dir, 'model.safetensors');
const photos = join(dir, 'photos');
const stderrLines = (s: string) => s.trim().split('\n').filter((l) => l && !l.startsWith('npm warn'));
type Prediction = { image: string; top: { index: number }[]; logits: number[] };

beforeAll(async () => {
  const test = await loadBuiltinDataset('fashion-mnist', 'test');
  const model = createModel('vit_tiny_patch4_28', { numClasses: 10, seed: 5 });
  saveCheckpoint(ckpt, model, metaFor('vit_tiny_patch4_28', model, [...test.classNames]));
  const png = (k: number, path: string) => sharp(Buffer.from(test.images.subarray(k * 784, (k + 1) * 784)), { raw: { width: 28, height: 28, channels: 1 } }).png().toFile(path);
  // photos/a.png, photos/b.jpg, photos/notes.txt, photos/sub/c.png, photos/.hidden/d.png
  for (const d of ['sub', '.hidden']) mkdirSync(join(photos, d), { recursive: true });
  await png(0, join(photos, 'a.png'));
  await sharp(Buffer.from(test.images.subarray(784, 1568)), { raw: { width: 28, height: 28, channels: 1 } }).jpeg().toFile(join(photos, 'b.jpg'));
  writeFileSync(join(photos, 'notes.txt'), 'not an image');
  await png(2, join(photos, 'sub', 'c.png'));
  await png(3, join(photos, '.hidden', 'd.png'));
});

describe('many images', () => {
  it('2,000 images named on the command line are answered in batches, in order, each as it would be alone', async () => {
    const many = join(dir, 'many');
    mkdirSync(many);
    const paths = Array.from({ length: 2000 }, (_, i) => join(many, `${String(i).padStart(4, '0')}.png`));
    for (const p of paths) copyFileSync(join(photos, 'a.png'), p);
    const [r, alone] = await Promise.all([
      runCli(['predict', '--checkpoint', ckpt, '--jsonl', '--batch-size', '64', ...paths]),
      runCli(['predict', '--checkpoint', ckpt, '--json', join(photos, 'a.png')]),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Prediction);
    expect(lines.map((l) => l.image)).toEqual(paths);
    const want = (JSON.parse(alone.stdout) as Prediction[])[0]!.logits;
    // the same image in every batch position (and the last, partial batch of 16) gives the same logits
    const worst = Math.max(...lines.flatMap((l) => l.logits.map((v, j) => Math.abs(v - want[j]!))));
    expect(worst).toBeLessThan(1e-4);
  }, 180_000);
});

describe('directories and patterns', () => {
  it('a directory is searched recursively for image files (hidden entries and other files skipped), in code-point order', async () => {
    const r = await runCli(['predict', '--checkpoint', ckpt, '--json', photos]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as Prediction[]).map((p) => p.image)).toEqual([join(photos, 'a.png'), join(photos, 'b.jpg'), join(photos, 'sub', 'c.png')]);
  });

  it('quoted glob patterns: *, ? and **; a pattern that matches nothing is reported and the rest answered', async () => {
    const r = await runCli(['predict', '--checkpoint', ckpt, '--jsonl', join(photos, '**', '*.png'), join(photos, '?.jpg'), join(photos, 'none*.png')]);
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split('\n').map((l) => (JSON.parse(l) as Prediction).image)).toEqual([join(photos, 'a.png'), join(photos, 'sub', 'c.png'), join(photos, 'b.jpg')]);
    expect(stderrLines(r.stderr)).toEqual([
      `tessera: ${join(photos, 'none*.png')}: no files match this pattern`,
      'tessera: 1 of 4 inputs failed (named above); the other 3 images were answered',
    ]);
  });

  it('pattern segments', () => {
    expect(segmentMatcher('*.png').test('x.png')).toBe(true);
    expect(segmentMatcher('*.png').test('x.pngs')).toBe(false);
    expect(segmentMatcher('img?[0-4].jp*g').test('img03.jpeg')).toBe(true);
    expect(segmentMatcher('img?[!0-4].jpg').test('img03.jpg')).toBe(false);
    expect(segmentMatcher('a+b(1).png').test('a+b(1).png')).toBe(true);
  });

  it('paths stream out of a directory walk as they are found', async () => {
    const it = imagePathsOf([photos])[Symbol.asyncIterator]();
    expect((await it.next()).value).toEqual({ path: join(photos, 'a.png') });
    await it.return?.(undefined);
  });
});

describe('an unreadable image among readable ones', () => {
  it('answers the readable ones, names the bad one on stderr, exits 1', async () => {
    const bad = join(dir, 'broken.png');
    writeFileSync(bad, 'hello');
    const good = [join(photos, 'a.png'), join(photos, 'b.jpg')];
    const r = await runCli(['predict', '--checkpoint', ckpt, '--json', good[0]!, bad, good[1]!]);
    expect(r.code).toBe(1);
    expect((JSON.parse(r.stdout) as Prediction[]).map((p) => p.image)).toEqual(good);
    const lines = stderrLines(r.stderr);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain(`tessera: ${bad}: not a readable image`);
    expect(lines[1]).toBe('tessera: 1 of 3 inputs failed (named above); the other 2 images were answered');
  });

  it('--json and --jsonl together are refused as a usage error', async () => {
    const r = await runCli(['predict', '--checkpoint', ckpt, '--json', '--jsonl', join(photos, 'a.png')]);
    expect(r.code).toBe(2);
    expect(stderrLines(r.stderr)).toEqual(["tessera: option '--json' cannot be used with option '--jsonl' (see --help)"]);
  });
});
