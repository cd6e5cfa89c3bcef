/**
 * End to end on image folders the test writes: Fashion-MNIST slices as PNG and JPEG, generated
 * RGB images in every format, a CMYK JPEG and broken files; shapes, exact pixels, skipping and
 * counting of broken files, strict mode, and identical batches for any worker count.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openImageDataset, type ImageDataset } from '../../src/data/datasets/folder_dataset.js';
import { createImageLoader, type ImageLoader, type ImageLoaderOptions } from '../../src/data/loader/image_loader.js';
import type { Batch } from '../../src/data/loader/batch_source.js';
import { removeTempDirs, tempDir } from './synthetic.js';
import { BROKEN, writeFashionFolder, writeMixedFolder, type FashionFolder } from './image_folder_fixture.js';

const FMNIST = { inputSize: [1, 28, 28] as const, cropPct: 1, interpolation: 'bilinear' as const, mean: [0.2860], std: [0.3530] };
const RGB32 = { inputSize: [3, 32, 32] as const, cropPct: 0.875, interpolation: 'bicubic' as const, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

let fashion: FashionFolder;
let fashionData: ImageDataset;
let mixedDir: string;
const loaders: ImageLoader[] = [];
const open = (ds: Parameters<typeof createImageLoader>[0], o: ImageLoaderOptions) => {
  const l = createImageLoader(ds, o);
  loaders.push(l);
  return l;
};

beforeAll(async () => {
  fashion = await writeFashionFolder(tempDir('tessera-fmnist-'), 6);
  fashionData = openImageDataset(fashion.dir);
  mixedDir = tempDir('tessera-mixed-');
  await writeMixedFolder(mixedDir);
});

afterAll(async () => {
  await Promise.all(loaders.map((l) => l.close()));
  removeTempDirs();
});

async function epoch(l: ImageLoader, e: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for (let i = 0; i < l.numBatches; i++) out.push(await l.batch(e, i));
  return out;
}

describe('image folder loader, end to end', () => {
  it('reads the Fashion-MNIST folder with classes in sorted order and exact eval pixels', async () => {
    expect(fashionData.classNames).toEqual([...fashion.source.classNames.map((n) => n.replace('/', '-'))].sort());
    expect(fashionData.train.length).toBe(60);
    const l = open(fashionData.train, { batchSize: 16, shuffle: false, seed: 0, train: false, transform: FMNIST, workers: 0 });
    const batches = await epoch(l, 0);
    expect(batches.map((b) => b.size)).toEqual([16, 16, 16, 12]); // the last partial batch is kept
    expect(batches[0]!.x.length).toBe(16 * 28 * 28);
    // the PNGs are the dataset's pixels: the eval transform at crop_pct 1 must give them back exactly
    const all = batches.flatMap((b) => Array.from({ length: b.size }, (_, i) => ({ x: b.x.subarray(i * 784, (i + 1) * 784), label: b.labels[i]! })));
    fashionData.train.paths.forEach((path, i) => {
      const file = fashion.files.find((f) => f.path === path)!;
      expect(fashionData.classNames[all[i]!.label]).toBe(file.folder);
      if (file.format !== 'png') return;
      const px = fashion.source.images.subarray(file.source * 784, (file.source + 1) * 784);
      all[i]!.x.forEach((v, k) => expect(v).toBeCloseTo((px[k]! / 255 - 0.286) / 0.353, 5));
    });
  });

  it('gives identical training batches with 0, 1 and 2 workers (augmentation and Mixup/CutMix included)', async () => {
    const opts = (workers: number): ImageLoaderOptions => ({
      batchSize: 10, shuffle: true, seed: 7, train: true, workers, smoothing: 0.1,
      transform: { ...RGB32, aa: 'rand-m9-mstd0.5-inc1', reprob: 0.25, vflip: 0.2 },
      mixup: { mixup: 0.8, cutmix: 1.0 },
    });
    const ds = openImageDataset(mixedDir, { valSplit: 0 }).train;
    const [a, b, c] = [open(ds, opts(0)), open(ds, opts(1)), open(ds, opts(2))];
    for (const e of [0, 1]) {
      const [ea, eb, ec] = await Promise.all([epoch(a, e), epoch(b, e), epoch(c, e)]);
      for (let i = 0; i < ea.length; i++) {
        expect(eb[i]!.x).toEqual(ea[i]!.x);
        expect(ec[i]!.x).toEqual(ea[i]!.x);
        expect(ec[i]!.targets).toEqual(ea[i]!.targets);
        expect(ec[i]!.labels).toEqual(ea[i]!.labels);
      }
      // broken files are replaced in training: full batches, finite values, soft targets that sum to 1
      expect(ea.map((x) => x.size)).toEqual([10, ds.length - 10]);
      for (const batch of ea) {
        expect(batch.x.every(Number.isFinite)).toBe(true);
        for (let r = 0; r < batch.size; r++) expect(batch.targets.subarray(r * 4, r * 4 + 4).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 5);
      }
    }
    const epoch0 = await epoch(c, 0);
    const epoch1 = await epoch(c, 1);
    expect(epoch1[0]!.x).not.toEqual(epoch0[0]!.x);
    for (const l of [a, b, c]) expect(l.skippedFiles.map((f) => f.path.split('/').pop()).sort()).toEqual([...BROKEN].sort());
  });

  it('skips and counts broken files in evaluation, reporting each once, and decodes every format', async () => {
    const reported: string[] = [];
    const data = openImageDataset(mixedDir);
    expect(data.classNames).toEqual(['broken', 'cmyk', 'formats', 'photos']);
    expect(data.ignoredFiles).toBe(1);
    const l = open(data.train, { batchSize: 8, shuffle: false, seed: 0, train: false, transform: RGB32, workers: 2, onSkip: (p) => reported.push(p) });
    for (const e of [0, 1]) {
      const batches = await epoch(l, e);
      expect(batches.reduce((s, b) => s + b.size, 0)).toBe(data.train.length - BROKEN.length);
      for (const b of batches) expect(b.x.length).toBe(b.size * 3 * 32 * 32);
    }
    expect(l.skipped).toBe(BROKEN.length);
    expect(reported.map((p) => p.split('/').pop()).sort()).toEqual([...BROKEN].sort());
    // libvips' own wording varies with the thread that hit the error ("premature end", or "Unknown error")
    expect(l.skippedFiles.find((f) => f.path.endsWith('truncated.jpg'))!.message).toMatch(/truncated\.jpg: (could not decode|.*(premature|corrupt|end))/i);
  });

  it('stops at the first broken file with strict', async () => {
    const data = openImageDataset(mixedDir);
    const l = open(data.train, { batchSize: 16, shuffle: false, seed: 0, train: false, transform: RGB32, workers: 1, strict: true, onSkip: () => {} });
    await expect(l.batch(0, 0)).rejects.toThrow(/broken\/(truncated\.jpg|random-bytes\.png|empty\.webp).*--strict/);
  });

  it('reuses the memory of released batches, and rebuilds a released batch identically when asked again', async () => {
    const l = open(fashionData.train, { batchSize: 8, shuffle: true, seed: 3, train: true, transform: { ...FMNIST, hflip: 0.5 }, workers: 1, prefetch: 0 });
    const first = await l.batch(0, 0);
    const copy = first.x.slice();
    const memory = first.x.buffer;
    l.release(first);
    // the next batch of the same size takes the released buffer
    const second = await l.batch(0, 1);
    expect(second.x.buffer).toBe(memory);
    const again = await l.batch(0, 0);
    expect(again.x.buffer).not.toBe(memory);
    expect(again.x).toEqual(copy);
    // an unknown or already released batch is ignored
    l.release(first);
    l.release({ ...again, x: new Float32Array(again.x.length) });
    expect((await l.batch(0, 0)).x).toEqual(copy);
  });

  it('closing mid-epoch fails the pending batch without blaming the files', async () => {
    const l = createImageLoader(fashionData.train, { batchSize: 30, shuffle: true, seed: 0, train: true, transform: FMNIST, workers: 1 });
    const pending = l.batch(0, 0);
    await l.close();
    await expect(pending).rejects.toThrow(/closed/);
    expect(l.skipped).toBe(0);
    await expect(l.batch(0, 1)).rejects.toThrow(/closed/);
  });

  it('holds out a stratified validation split and evaluates it', async () => {
    const data = openImageDataset(fashion.dir, { valSplit: 0.5, seed: 3 });
    expect(data.valSource).toBe('split');
    expect(data.train.length + data.val!.length).toBe(60);
    const l = open(data.val!, { batchSize: 64, shuffle: false, seed: 0, train: false, transform: FMNIST, workers: 1 });
    const [b] = await epoch(l, 0);
    expect(b!.size).toBe(30);
    expect(new Set(b!.labels).size).toBe(10);
  });
});
