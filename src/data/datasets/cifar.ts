/**
 * CIFAR-10 / CIFAR-100 binary versions (https://www.cs.toronto.edu/~kriz/cifar.html): fixed-size
 * records of label byte(s) followed by a 32×32×3 image stored channel-major (1024 R, 1024 G, 1024 B),
 * which is already the N×C×H×W layout TensorDataset wants.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TensorDataset } from './dataset.js';

export const CIFAR_IMAGE_SHAPE = [3, 32, 32] as const;
const PIXELS = 3 * 32 * 32;

export interface CifarFormat {
  /** 1 for CIFAR-10 (label); 2 for CIFAR-100 (coarse label, fine label). */
  labelBytes: 1 | 2;
  /** Which label byte is the class: CIFAR-100's fine label is the second. */
  labelOffset: number;
  numClasses: number;
}

export const CIFAR10_FORMAT: CifarFormat = { labelBytes: 1, labelOffset: 0, numClasses: 10 };
export const CIFAR100_FORMAT: CifarFormat = { labelBytes: 2, labelOffset: 1, numClasses: 100 };

export const CIFAR10_FILES = {
  train: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  test: ['test_batch.bin'],
  meta: 'batches.meta.txt',
} as const;

export const CIFAR100_FILES = { train: ['train.bin'], test: ['test.bin'], meta: 'fine_label_names.txt' } as const;

/** Reads the records of several batch files into one images/labels pair, in file order. */
export function readCifarBatches(paths: readonly string[], format: CifarFormat): { images: Uint8Array; labels: Uint8Array } {
  const record = format.labelBytes + PIXELS;
  const buffers = paths.map((p) => {
    const bytes = readFileSync(p);
    if (bytes.length === 0 || bytes.length % record !== 0) {
      throw new Error(
        `${p}: ${bytes.length} bytes is not a whole number of ${record}-byte CIFAR records ` +
          `(${format.labelBytes} label byte(s) + ${PIXELS} pixels); the file is truncated or not a CIFAR-${format.numClasses} binary batch`,
      );
    }
    return bytes;
  });
  const n = buffers.reduce((a, b) => a + b.length / record, 0);
  const images = new Uint8Array(n * PIXELS);
  const labels = new Uint8Array(n);
  let i = 0;
  buffers.forEach((bytes, f) => {
    for (let off = 0; off < bytes.length; off += record, i++) {
      const label = bytes[off + format.labelOffset]!;
      if (label >= format.numClasses) {
        throw new Error(`${paths[f]}: label ${label} in record ${off / record} is out of range, expected 0..${format.numClasses - 1}`);
      }
      labels[i] = label;
      images.set(bytes.subarray(off + format.labelBytes, off + record), i * PIXELS);
    }
  });
  return { images, labels };
}

/** One class name per non-empty line (batches.meta.txt ends with blank lines). */
export function readClassNames(path: string, expectedCount: number): string[] {
  const names = readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (names.length !== expectedCount) throw new Error(`${path}: ${names.length} class names, expected ${expectedCount} (one per line)`);
  return names;
}

function loadCifar(
  dir: string,
  split: 'train' | 'test',
  name: string,
  files: { train: readonly string[]; test: readonly string[]; meta: string },
  format: CifarFormat,
): TensorDataset {
  const classNames = readClassNames(join(dir, files.meta), format.numClasses);
  const { images, labels } = readCifarBatches(files[split].map((f) => join(dir, f)), format);
  return { name: `${name}/${split}`, images, labels, imageShape: CIFAR_IMAGE_SHAPE, classNames, length: labels.length };
}

/** CIFAR-10 from a directory holding data_batch_1..5.bin, test_batch.bin and batches.meta.txt. */
export function loadCifar10Split(dir: string, split: 'train' | 'test'): TensorDataset {
  return loadCifar(dir, split, 'cifar10', CIFAR10_FILES, CIFAR10_FORMAT);
}

/** CIFAR-100 (fine labels) from a directory holding train.bin, test.bin and fine_label_names.txt. */
export function loadCifar100Split(dir: string, split: 'train' | 'test'): TensorDataset {
  return loadCifar(dir, split, 'cifar100', CIFAR100_FILES, CIFAR100_FORMAT);
}
