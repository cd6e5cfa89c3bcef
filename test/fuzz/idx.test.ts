/**
 * Fuzzing the IDX reader (MNIST, Fashion-MNIST): mutations of valid image and label files, plain
 * and gzipped, with the magic and the dimension words targeted, then whole splits read from files.
 * Any input gives dims whose product is the data length, or tessera's one-line Error; a dimension
 * of 2^32 − 1 allocates nothing.
 */
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadIdxSplit, maybeGunzip, parseIdx, type IdxTensor } from '../../src/data/datasets/idx.js';
import type { TensorDataset } from '../../src/data/datasets/dataset.js';
import { expectAllowed, fc, fuzz, mutatedBytes, peakRss, RSS_GROWTH_LIMIT, scratchDir, timeout } from './helpers.js';

function idx(dims: number[], fill: (i: number) => number): Uint8Array {
  const n = dims.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(4 + 4 * dims.length + n);
  const v = new DataView(out.buffer);
  v.setUint32(0, 0x0800 | dims.length);
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d));
  for (let i = 0; i < n; i++) out[4 + 4 * dims.length + i] = fill(i);
  return out;
}

const images = idx([3, 5, 4], (i) => (i * 29) & 0xff);
const labels = idx([3], (i) => i % 10);
const plain = [images, labels, idx([2, 2], (i) => i), idx([0, 28, 28], () => 0)];
const corpus = [...plain, ...plain.slice(0, 2).map((b) => new Uint8Array(gzipSync(b)))];
// the magic and the first dimension words of every seed
const fieldOffsets = [0, 2, 3, 4, 8, 12, 16];
const CLASSES = Array.from({ length: 10 }, (_, i) => `c${i}`);

const wellFormed = (input: Uint8Array) => (t: IdxTensor) => {
  expect(t.data.length).toBe(t.dims.reduce((a, b) => a * b, 1));
  expect(t.data.length).toBeLessThanOrEqual(input.length * 1100); // what gunzip can expand to, no more
};

const read = (b: Uint8Array, expectedDims?: number) => expectAllowed('parseIdx', () => parseIdx(maybeGunzip(b, 'fuzz.idx'), 'fuzz.idx', expectedDims), {
  errors: [Error], inputBytes: b.length, check: wellFormed(b),
});

let rss0 = 0;
const scratch = scratchDir('idx');
beforeAll(() => { rss0 = peakRss(); });
afterAll(() => {
  scratch.remove();
  expect(peakRss() - rss0).toBeLessThan(RSS_GROWTH_LIMIT);
});

describe('fuzz: IDX', () => {
  it('the corpus reads', () => {
    for (const b of corpus) expect(read(b).ok).toBe(true);
  });

  it('mutated files (magic, type, rank and dimension words targeted; gzip streams too) and random bytes', () => {
    fuzz('idx-bytes', [mutatedBytes(corpus, { fieldOffsets }), fc.constantFrom(undefined, 1, 3)], (b, expectedDims) => { read(b, expectedDims); }, 4000);
  }, timeout(60_000));

  it('image and label files read as a split: counts, labels and shapes agree or are refused', () => {
    const imagesPath = scratch.path('images-idx3-ubyte');
    const labelsPath = scratch.path('labels-idx1-ubyte.gz');
    fuzz('idx-split', [mutatedBytes([images, corpus[4]!], { fieldOffsets }), mutatedBytes([labels, corpus[5]!], { fieldOffsets })], (img, lab) => {
      writeFileSync(imagesPath, img);
      writeFileSync(labelsPath, lab);
      expectAllowed('loadIdxSplit', () => loadIdxSplit(imagesPath, labelsPath, { name: 'fuzz', classNames: CLASSES }), {
        errors: [Error], inputBytes: img.length + lab.length,
        check: (d: TensorDataset) => {
          const [, h, w] = d.imageShape;
          expect(d.images.length).toBe(d.length * h! * w!);
          expect(d.labels.length).toBe(d.length);
          expect(Array.from(d.labels).every((l) => l < CLASSES.length)).toBe(true);
        },
      });
    }, 800);
  }, timeout(60_000));

  it('a dimension of 2^32 − 1 (or dims whose product passes 2^53) is refused without allocating', () => {
    for (const dims of [[0xffffffff, 28, 28], [0xffffffff, 0xffffffff, 0xffffffff], [0, 0xffffffff, 5]]) {
      const b = idx([1, 1, 1], () => 0);
      const v = new DataView(b.buffer);
      dims.forEach((d, i) => v.setUint32(4 + 4 * i, d));
      expect(read(b, 3).ok).toBe(false);
    }
  });
});
