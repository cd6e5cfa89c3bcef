import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { loadIdxSplit, parseIdx, readIdxFile } from '../../src/data/datasets/idx.js';
import { idxBytes, mnistLike, removeTempDirs, tempDir } from './synthetic.js';

afterAll(removeTempDirs);

const DEBIAN = '/usr/share/datasets/fashion-mnist';
const classNames = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

describe('Fashion-MNIST from Debian dataset-fashion-mnist', () => {
  it('reads the real test split: 10,000 28×28 images, 1,000 per class, first label Ankle boot', async () => {
    const home = tempDir();
    const ds = await loadBuiltinDataset('fashion-mnist', 'test', { homeDir: home, env: {}, download: false });
    expect(ds.name).toBe('fashion-mnist/test');
    expect(ds.length).toBe(10_000);
    expect(ds.imageShape).toEqual([1, 28, 28]);
    expect(ds.images.length).toBe(10_000 * 28 * 28);
    const counts = new Array(10).fill(0);
    for (const l of ds.labels) counts[l]++;
    expect(counts).toEqual(new Array(10).fill(1000));
    expect(ds.labels[0]).toBe(9);
    expect(ds.classNames[ds.labels[0]!]).toBe('Ankle boot');
    // A real image, not a blank: the first test image (an ankle boot) has dark background and bright pixels.
    const first = ds.images.subarray(0, 784);
    expect(first[0]).toBe(0);
    expect(Math.max(...first)).toBeGreaterThan(200);
  });

  it('reads the raw label file directly (gzip detected by magic)', () => {
    const labels = readIdxFile(join(DEBIAN, 't10k-labels-idx1-ubyte.gz'), 1);
    expect(labels.dims).toEqual([10_000]);
  });
});

describe('IDX parsing', () => {
  it('parses plain and gzip-compressed files alike', () => {
    const dir = tempDir();
    const { images, labels } = mnistLike(5);
    writeFileSync(join(dir, 'img'), images);
    writeFileSync(join(dir, 'lbl.gz'), gzipSync(labels));
    const ds = loadIdxSplit(join(dir, 'img'), join(dir, 'lbl.gz'), { name: 'tiny', classNames });
    expect(ds.length).toBe(5);
    expect(Array.from(ds.labels)).toEqual([0, 1, 2, 3, 4]);
    expect(ds.images[3 * 784 + 100]).toBe(3);
  });

  it('rejects a wrong magic, naming the file and the expected magic', () => {
    const bytes = idxBytes([2, 28, 28]);
    bytes.set([0x12, 0x34, 0xab, 0xcd], 0);
    expect(() => parseIdx(bytes, 'train-images-idx3-ubyte.gz', 3)).toThrow(
      'train-images-idx3-ubyte.gz: bad IDX magic 0x1234abcd, expected 0x00000803 for a 3-D ubyte image file',
    );
  });

  it('rejects a label file given as images (dimension count in the magic)', () => {
    expect(() => parseIdx(idxBytes([4]), 'x-images', 3)).toThrow('x-images: bad IDX magic 0x00000801, expected 0x00000803');
  });

  it('rejects non-ubyte element types', () => {
    const bytes = idxBytes([4]);
    bytes[2] = 0x0d;
    expect(() => parseIdx(bytes, 'f.idx', 1)).toThrow('f.idx: IDX element type 0x0d (float32) is not supported, expected 0x00000801');
  });

  it('rejects a truncated image file with expected and actual byte counts', () => {
    const dir = tempDir();
    const path = join(dir, 't10k-images-idx3-ubyte.gz');
    writeFileSync(path, gzipSync(idxBytes([3, 28, 28]).subarray(0, 1000)));
    expect(() => readIdxFile(path, 3)).toThrow(`${path}: IDX file truncated: header says 3×28×28 ubyte, expected 2368 bytes, got 1000`);
  });

  it('rejects a cut-off gzip stream', () => {
    const dir = tempDir();
    const path = join(dir, 'cut.gz');
    const gz = gzipSync(idxBytes([3, 28, 28]));
    writeFileSync(path, gz.subarray(0, gz.length - 20));
    expect(() => readIdxFile(path, 3)).toThrow(`${path}: corrupt gzip data (unexpected end of file)`);
  });

  it('rejects a label/image count mismatch', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'images'), mnistLike(5).images);
    writeFileSync(join(dir, 'labels'), mnistLike(4).labels);
    expect(() => loadIdxSplit(join(dir, 'images'), join(dir, 'labels'), { name: 't', classNames })).toThrow(
      `${join(dir, 'labels')}: 4 labels, but ${join(dir, 'images')} has 5 images; expected the same count`,
    );
  });

  it('rejects labels outside the class list', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'images'), mnistLike(3).images);
    writeFileSync(join(dir, 'labels'), idxBytes([3], Uint8Array.from([1, 12, 0])));
    expect(() => loadIdxSplit(join(dir, 'images'), join(dir, 'labels'), { name: 't', classNames })).toThrow(
      `${join(dir, 'labels')}: label 12 at index 1 is out of range, expected 0..9 (10 classes)`,
    );
  });
});
