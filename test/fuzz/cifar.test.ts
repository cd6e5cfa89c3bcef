/**
 * Fuzzing the CIFAR-10 / CIFAR-100 binary readers: mutated batch files (records cut, labels out of
 * range, splices of the two formats) and mutated class-name files, read the way a dataset is.
 * Any input gives whole records with in-range labels, or tessera's one-line Error.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CIFAR100_FORMAT, CIFAR10_FORMAT, loadCifar100Split, readCifarBatches, readClassNames } from '../../src/data/datasets/cifar.js';
import type { TensorDataset } from '../../src/data/datasets/dataset.js';
import { expectAllowed, fc, fuzz, mutatedBytes, mutatedText, peakRss, RSS_GROWTH_LIMIT, scratchDir, timeout } from './helpers.js';

const PIXELS = 3 * 32 * 32;

function batch(labelBytes: 1 | 2, labels: number[][]): Uint8Array {
  const record = labelBytes + PIXELS;
  const out = new Uint8Array(labels.length * record);
  labels.forEach((l, r) => {
    out.set(l, r * record);
    for (let i = 0; i < PIXELS; i++) out[r * record + labelBytes + i] = (r * 7 + i * 13) & 0xff;
  });
  return out;
}

const cifar10 = batch(1, [[3], [9], [0]]);
const cifar100 = batch(2, [[1, 42], [19, 99]]);
const names100 = Array.from({ length: 100 }, (_, i) => `class_${i}`).join('\n') + '\n\n';
const names10 = 'airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n';
// label bytes and the record edges, where a length goes wrong
const fieldOffsets = [0, 1, 2, PIXELS, PIXELS + 1, PIXELS + 2, 2 * PIXELS + 2];

let rss0 = 0;
const scratch = scratchDir('cifar');
beforeAll(() => { rss0 = peakRss(); });
afterAll(() => {
  scratch.remove();
  expect(peakRss() - rss0).toBeLessThan(RSS_GROWTH_LIMIT);
});

describe('fuzz: CIFAR binary batches', () => {
  it('mutated batch files of both formats read as CIFAR-10 and CIFAR-100', () => {
    const a = scratch.path('data_batch_1.bin');
    const b = scratch.path('data_batch_2.bin');
    fuzz('cifar-batches', [mutatedBytes([cifar10, cifar100], { fieldOffsets, maxRandomBytes: 8000 }), mutatedBytes([cifar10, cifar100], { fieldOffsets }), fc.boolean()], (x, y, hundred) => {
      writeFileSync(a, x);
      writeFileSync(b, y);
      const format = hundred ? CIFAR100_FORMAT : CIFAR10_FORMAT;
      expectAllowed('readCifarBatches', () => readCifarBatches([a, b], format), {
        errors: [Error], inputBytes: x.length + y.length,
        check: ({ images, labels }) => {
          expect(images.length).toBe(labels.length * PIXELS);
          expect(labels.length).toBe((x.length + y.length) / (format.labelBytes + PIXELS));
          expect(Array.from(labels).every((l) => l < format.numClasses)).toBe(true);
        },
      });
    }, 500);
  }, timeout(60_000));

  it('a CIFAR-100 folder with a mutated train.bin and fine_label_names.txt', () => {
    const dir = join(scratch.dir, 'cifar-100-binary');
    mkdirSync(dir, { recursive: true });
    fuzz('cifar100-split', [mutatedBytes([cifar100, cifar10], { fieldOffsets }), mutatedText([names100, names10])], (bin, names) => {
      writeFileSync(join(dir, 'train.bin'), bin);
      writeFileSync(join(dir, 'fine_label_names.txt'), names);
      expectAllowed('loadCifar100Split', () => loadCifar100Split(dir, 'train'), {
        errors: [Error], inputBytes: bin.length + names.length,
        check: (d: TensorDataset) => {
          expect(d.classNames).toHaveLength(100);
          expect(d.images.length).toBe(d.length * PIXELS);
        },
      });
    }, 500);
  }, timeout(60_000));

  it('class-name files: exactly the expected count of non-empty lines, or a one-line Error', () => {
    const p = scratch.path('batches.meta.txt');
    fuzz('cifar-names', [mutatedText([names10, names100])], (text) => {
      writeFileSync(p, text);
      expectAllowed('readClassNames', () => readClassNames(p, 10), {
        errors: [Error], inputBytes: text.length,
        check: (names) => { expect(names).toHaveLength(10); expect(names.every((n) => n.length > 0)).toBe(true); },
      });
    }, 800);
  }, timeout(60_000));
});
