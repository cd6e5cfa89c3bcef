import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadBuiltinDataset } from '../../src/data/datasets/builtin.js';
import { loadCifar100Split, loadCifar10Split, readCifarBatches, CIFAR10_FORMAT } from '../../src/data/datasets/cifar.js';
import { CIFAR10_NAMES, cifar100Names, cifarPixel, cifarRecords, removeTempDirs, tempDir } from './synthetic.js';

afterAll(removeTempDirs);

function writeCifar10(dir: string): void {
  mkdirSync(dir, { recursive: true });
  // Two records per training batch: labels 2b-1 and 2b (mod 10) for batch b, in file order.
  for (let b = 1; b <= 5; b++) writeFileSync(join(dir, `data_batch_${b}.bin`), cifarRecords([[(2 * b - 2) % 10], [(2 * b - 1) % 10]]));
  writeFileSync(join(dir, 'test_batch.bin'), cifarRecords([[3], [7], [9]]));
  writeFileSync(join(dir, 'batches.meta.txt'), CIFAR10_NAMES.join('\n') + '\n\n');
}

function writeCifar100(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'train.bin'), cifarRecords([[4, 99], [0, 17]]));
  writeFileSync(join(dir, 'test.bin'), cifarRecords([[19, 42]]));
  writeFileSync(join(dir, 'fine_label_names.txt'), cifar100Names().join('\n') + '\n');
}

describe('CIFAR binary', () => {
  it('reads CIFAR-10 train batches in order with CHW pixels and meta class names', () => {
    const dir = tempDir();
    writeCifar10(dir);
    const ds = loadCifar10Split(dir, 'train');
    expect(ds.name).toBe('cifar10/train');
    expect(ds.length).toBe(10);
    expect(ds.imageShape).toEqual([3, 32, 32]);
    expect(Array.from(ds.labels)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(ds.classNames).toEqual(CIFAR10_NAMES);
    // Record i of each file is image i within the batch; image 5 is record 1 of batch 3.
    const per = 3 * 32 * 32;
    for (const [c, y, x] of [[0, 0, 0], [1, 5, 7], [2, 31, 30]] as const) {
      expect(ds.images[5 * per + c * 1024 + y * 32 + x]).toBe(cifarPixel(1, c, y, x));
      expect(ds.images[4 * per + c * 1024 + y * 32 + x]).toBe(cifarPixel(0, c, y, x));
    }
  });

  it('reads the CIFAR-10 test batch', () => {
    const dir = tempDir();
    writeCifar10(dir);
    const ds = loadCifar10Split(dir, 'test');
    expect(Array.from(ds.labels)).toEqual([3, 7, 9]);
    expect(ds.images[2 * 3072 + 1024 + 33]).toBe(cifarPixel(2, 1, 1, 1));
  });

  it('reads CIFAR-100 fine labels (second label byte) and fine class names', () => {
    const dir = tempDir();
    writeCifar100(dir);
    const train = loadCifar100Split(dir, 'train');
    expect(Array.from(train.labels)).toEqual([99, 17]);
    expect(train.classNames).toHaveLength(100);
    expect(train.classNames[99]).toBe('class_99');
    expect(train.images[3072 + 2 * 1024 + 32 * 10 + 4]).toBe(cifarPixel(1, 2, 10, 4));
    const test = loadCifar100Split(dir, 'test');
    expect(Array.from(test.labels)).toEqual([42]);
    expect(test.name).toBe('cifar100/test');
  });

  it('rejects a file that is not a whole number of records', () => {
    const dir = tempDir();
    const path = join(dir, 'data_batch_1.bin');
    writeFileSync(path, cifarRecords([[1], [2]]).subarray(0, 5000));
    expect(() => readCifarBatches([path], CIFAR10_FORMAT)).toThrow(
      `${path}: 5000 bytes is not a whole number of 3073-byte CIFAR records (1 label byte(s) + 3072 pixels)`,
    );
  });

  it('rejects out-of-range labels and a wrong class-name count', () => {
    const dir = tempDir();
    writeCifar10(dir);
    writeFileSync(join(dir, 'test_batch.bin'), cifarRecords([[3], [10]]));
    expect(() => loadCifar10Split(dir, 'test')).toThrow(`${join(dir, 'test_batch.bin')}: label 10 in record 1 is out of range, expected 0..9`);
    writeFileSync(join(dir, 'batches.meta.txt'), 'cat\ndog\n');
    expect(() => loadCifar10Split(dir, 'train')).toThrow(`${join(dir, 'batches.meta.txt')}: 2 class names, expected 10 (one per line)`);
  });

  it('loadBuiltinDataset finds hand-extracted cifar-10-batches-bin under <data-dir>/cifar10', async () => {
    const root = tempDir();
    writeCifar10(join(root, 'cifar10', 'cifar-10-batches-bin'));
    const ds = await loadBuiltinDataset('cifar10', 'test', { dataDir: root, homeDir: tempDir(), env: {}, systemDir: tempDir(), download: false });
    expect(Array.from(ds.labels)).toEqual([3, 7, 9]);
  });
});
