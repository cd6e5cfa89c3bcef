/**
 * Batches from an in-memory tensor dataset: a seeded order per epoch, per-sample augmentation
 * seeded by (seed, epoch, index), normalisation, and soft targets with label smoothing. Any
 * batch of any epoch can be rebuilt on its own, which is what makes resume exact.
 */
import type { TensorDataset } from '../datasets/dataset.js';
import { Random, mixSeed } from '../../random.js';
import { balancedEpochOrder, epochOrder, type BatchSource } from './batch_source.js';
import { applyMixup, mixupActive, type MixupOptions } from '../transforms/mixup.js';
import { horizontalFlip, normalize, randomCropWithPadding, randomErasing, toFloatImage } from '../transforms/tensor_transforms.js';

export interface AugmentOptions { cropPadding: number; hflip: number; reprob: number; remode: 'pixel' | 'const' }

export interface TensorLoaderOptions {
  batchSize: number;
  /** Shuffle each epoch (training); evaluation keeps the dataset order. */
  shuffle: boolean;
  /** Class-balanced draws with replacement instead of a permutation (balancedEpochOrder; training). */
  balanced?: boolean;
  seed: number;
  mean: readonly number[];
  std: readonly number[];
  /** Training augmentation; none for evaluation. */
  augment?: AugmentOptions;
  /** Label smoothing ε for the soft targets. */
  smoothing?: number;
  /** Batch-level Mixup/CutMix (training), seeded by (seed, epoch, batch) as the image loader's. */
  mixup?: MixupOptions;
}

export interface Batch {
  /** [B, C, H, W] normalised */
  x: Float32Array;
  labels: Int32Array;
  /** [B, classes]: (1 − ε)·onehot + ε/classes */
  targets: Float32Array;
  size: number;
}

export class TensorLoader implements BatchSource {
  private orderCache?: { epoch: number; order: Uint32Array };

  constructor(readonly dataset: TensorDataset, readonly opts: TensorLoaderOptions) {}

  get numBatches(): number {
    return Math.ceil(this.dataset.length / this.opts.batchSize);
  }

  get length(): number {
    return this.dataset.length;
  }

  get classNames(): readonly string[] {
    return this.dataset.classNames;
  }

  get imageShape(): readonly [number, number, number] {
    return this.dataset.imageShape;
  }

  /** The epoch's sample order: a seeded permutation, or the identity without shuffling. */
  order(epoch: number): Uint32Array {
    if (this.orderCache?.epoch === epoch) return this.orderCache.order;
    const idx = this.opts.balanced ? balancedEpochOrder(this.dataset.labels, this.opts.seed, epoch) : epochOrder(this.dataset.length, this.opts.shuffle, this.opts.seed, epoch);
    this.orderCache = { epoch, order: idx };
    return idx;
  }

  batch(epoch: number, i: number): Batch {
    const { dataset: ds, opts } = this;
    const [c, h, w] = ds.imageShape;
    const per = c * h * w;
    const classes = ds.classNames.length;
    const order = this.order(epoch);
    const start = i * opts.batchSize;
    const size = Math.min(opts.batchSize, ds.length - start);
    const x = new Float32Array(size * per);
    const labels = new Int32Array(size);
    const eps = opts.smoothing ?? 0;
    const targets = new Float32Array(size * classes).fill(eps / classes);
    for (let b = 0; b < size; b++) {
      const index = order[start + b]!;
      let img = toFloatImage(ds.images.subarray(index * per, (index + 1) * per), c, h, w);
      const a = opts.augment;
      // a balanced epoch repeats images: each turn gets its own augmentation
      const rng = a ? new Random(opts.balanced ? mixSeed(opts.seed, epoch, index, start + b) : mixSeed(opts.seed, epoch, index)) : undefined;
      if (a && rng) img = horizontalFlip(randomCropWithPadding(img, a.cropPadding, rng), a.hflip, rng);
      normalize(img, opts.mean, opts.std);
      if (a && rng && a.reprob > 0) randomErasing(img, { probability: a.reprob, mode: a.remode }, rng);
      x.set(img.data, b * per);
      labels[b] = ds.labels[index]!;
      targets[b * classes + labels[b]!]! += 1 - eps;
    }
    if (opts.mixup && mixupActive(opts.mixup)) {
      const mixed = applyMixup({ x, labels, size, shape: [c, h, w], classes, smoothing: eps }, opts.mixup, new Random(mixSeed(opts.seed, epoch, i, 0x3a1c)));
      return { x, labels, targets: mixed.targets, size };
    }
    return { x, labels, targets, size };
  }
}
