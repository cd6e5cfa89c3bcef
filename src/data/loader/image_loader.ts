/**
 * Batches from an image dataset on disk (folder or manifest), decoded and augmented in worker
 * threads with prefetch. The contract is the tensor loader's: batch(epoch, i) is a pure
 * function of (seed, epoch, i) — the epoch's order is a seeded permutation, each sample's
 * augmentation is seeded by (seed, epoch, index), Mixup/CutMix by (seed, epoch, batch) — so the
 * batches are identical for any worker count and a resumed run sees the same data.
 *
 * A file that cannot be decoded is reported once (onSkip) and skipped: in training its place is
 * taken by the next decodable sample of the epoch's order, so batches keep their size; in
 * evaluation it is left out. `strict` turns the first such file into an error.
 */
import { balancedEpochOrder, epochOrder } from './batch_source.js';
import { availableParallelism } from 'node:os';
import { Random, mixSeed } from '../../random.js';
import type { Batch, BatchSource } from './batch_source.js';
import { DatasetError, type ImageSamples } from '../datasets/folder_dataset.js';
import type { SampleTask } from '../transforms/image_pipeline.js';
import { applyMixup, mixedTargets, mixupActive, mixupSchema, type MixupOptions, type MixupOptionsInput } from '../transforms/mixup.js';
import { resolveImageTransform, type ImageTransformOptions, type ResolvedImageTransform } from '../transforms/transform_config.js';
import { acquireWorkerPool, type WorkerPool } from './worker_pool.js';

// libuv's thread pool (4 threads unless UV_THREADPOOL_SIZE says otherwise) runs the sharp decodes of
// every worker thread, so with more cores it must grow; it is sized on first use, hence at import
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(4, availableParallelism()));

export interface ImageLoaderOptions {
  batchSize: number;
  /** Shuffle each epoch (training); evaluation keeps the dataset order. */
  shuffle: boolean;
  /** Class-balanced draws with replacement instead of a permutation (balancedEpochOrder; training). */
  balanced?: boolean;
  seed: number;
  /** Training transform (RandomResizedCrop, flips, RandAugment/ColorJitter, erasing) or the eval transform. */
  train: boolean;
  /** The model's preprocessing and timm's augmentation flags. */
  transform: ImageTransformOptions;
  /** Mixup/CutMix (training only). */
  mixup?: MixupOptionsInput;
  /** Label smoothing ε of the soft targets (combined with Mixup as timm does). */
  smoothing?: number;
  /** Decoding threads; default the core count; 0 decodes on this thread. */
  workers?: number;
  /** Batches prepared ahead of the one asked for; default 2. */
  prefetch?: number;
  /** Drop the last partial batch (timm drops it in training when Mixup needs even batches); default false. */
  dropLast?: boolean;
  /** An undecodable file is an error instead of being skipped. */
  strict?: boolean;
  /** Called once per undecodable file (default: console.warn). */
  onSkip?: (path: string, message: string) => void;
}

export interface SkippedFile { path: string; message: string }

export class ImageDecodeFailure extends Error {
  override name = 'ImageDecodeFailure';
}

type SampleResult = { ok: true; data: Float32Array } | { ok: false; message: string; fatal?: boolean };

export class ImageLoader implements BatchSource {
  readonly transform: ResolvedImageTransform;
  readonly mixup?: MixupOptions;
  readonly workers: number;
  private readonly prefetch: number;
  private pool?: { pool: WorkerPool; release: () => Promise<void> };
  private readonly cache = new Map<number, Promise<Batch>>();
  /** Built batches by their cache key, so release() can drop one from the cache. */
  private readonly keys = new WeakMap<Batch, number>();
  /** Image buffers of released batches (a batch of 64 224×224 images is 38 MB: reusing it spares the GC). */
  private readonly spare: ArrayBuffer[] = [];
  private readonly orders = new Map<number, Uint32Array>();
  private readonly bad = new Map<number, string>();
  private closed = false;
  private inThread = 0;
  private readonly inThreadQueue: (() => void)[] = [];

  constructor(readonly dataset: ImageSamples, readonly opts: ImageLoaderOptions) {
    if (!(Number.isInteger(opts.batchSize) && opts.batchSize > 0)) throw new RangeError(`batchSize must be a positive integer, got ${opts.batchSize}`);
    if (dataset.length === 0) throw new DatasetError(`${dataset.name} has no images`);
    this.transform = resolveImageTransform(opts.transform);
    if (opts.train && opts.mixup) {
      const m = mixupSchema.safeParse(opts.mixup);
      if (!m.success) throw new RangeError(`mixup ${m.error.issues[0]!.path.join('.')}: ${m.error.issues[0]!.message}`);
      if (mixupActive(m.data)) this.mixup = m.data;
    }
    const smoothing = opts.smoothing ?? 0;
    if (!(smoothing >= 0 && smoothing < 1)) throw new RangeError(`smoothing must be in [0, 1), got ${smoothing}`);
    this.workers = opts.workers ?? availableParallelism();
    if (!(Number.isInteger(this.workers) && this.workers >= 0)) throw new RangeError(`workers must be a whole number ≥ 0, got ${opts.workers}`);
    this.prefetch = opts.prefetch ?? 2;
    if (this.workers > 0) this.pool = acquireWorkerPool(this.workers);
  }

  get numBatches(): number {
    const n = this.dataset.length / this.opts.batchSize;
    return this.opts.dropLast ? Math.max(1, Math.floor(n)) : Math.ceil(n);
  }

  get length(): number {
    return this.opts.dropLast ? Math.min(this.dataset.length, this.numBatches * this.opts.batchSize) : this.dataset.length;
  }

  get classNames(): readonly string[] {
    return this.dataset.classNames;
  }

  get imageShape(): readonly [number, number, number] {
    return this.transform.eval.inputSize;
  }

  /** Files found undecodable so far (each reported once). */
  get skippedFiles(): readonly SkippedFile[] {
    return [...this.bad].map(([i, message]) => ({ path: this.dataset.paths[i]!, message }));
  }

  get skipped(): number {
    return this.bad.size;
  }

  /** The epoch's sample order: the tensor loader's seeded permutation, or the identity. */
  order(epoch: number): Uint32Array {
    const cached = this.orders.get(epoch);
    if (cached) return cached;
    const idx = this.opts.balanced ? balancedEpochOrder(this.dataset.labels, this.opts.seed, epoch) : epochOrder(this.dataset.length, this.opts.shuffle, this.opts.seed, epoch);
    // prefetch runs into the next epoch while this one finishes: keep two
    if (this.orders.size >= 2) this.orders.delete(this.orders.keys().next().value!);
    this.orders.set(epoch, idx);
    return idx;
  }

  batch(epoch: number, index: number): Promise<Batch> {
    if (this.closed) return Promise.reject(new Error(`the loader of ${this.dataset.name} is closed`));
    if (!(Number.isInteger(index) && index >= 0 && index < this.numBatches)) return Promise.reject(new RangeError(`batch ${index} does not exist (${this.numBatches} batches)`));
    const nb = this.numBatches;
    const at = epoch * nb + index;
    // training runs on into the next epoch; evaluation restarts at epoch 0 and must not
    const ahead = this.opts.train ? this.prefetch : Math.min(this.prefetch, nb - 1 - index);
    for (const key of this.cache.keys()) if (key < at || key > at + ahead) this.cache.delete(key);
    for (let k = at; k <= at + ahead; k++) {
      if (!this.cache.has(k)) {
        const p = this.build(Math.floor(k / nb), k % nb).then((b) => (this.keys.set(b, k), b));
        p.catch(() => {}); // a prefetched batch's error surfaces when it is asked for
        this.cache.set(k, p);
      }
    }
    return this.cache.get(at)!;
  }

  private async build(epoch: number, index: number): Promise<Batch> {
    const { batchSize } = this.opts;
    const [c, h, w] = this.imageShape;
    const per = c * h * w;
    const classes = this.classNames.length;
    const start = index * batchSize;
    const count = Math.min(batchSize, this.length - start);
    // every sample's place is written (or compacted away): no need for zeroed memory
    const bytes = count * per * 4;
    const reuse = this.spare.findIndex((b) => b.byteLength === bytes);
    const x = new Float32Array(reuse >= 0 ? this.spare.splice(reuse, 1)[0]! : Buffer.allocUnsafeSlow(bytes).buffer);
    const labels = new Int32Array(count);
    const kept = new Uint8Array(count);
    await Promise.all(Array.from({ length: count }, async (_, b) => {
      const s = await this.sampleAt(epoch, start + b);
      if (!s) return;
      x.set(s.data, b * per);
      this.pool?.pool.recycle(s.data);
      labels[b] = this.dataset.labels[s.index]!;
      kept[b] = 1;
    }));
    let size = count;
    let xs = x, ls = labels;
    if (kept.includes(0)) {
      // evaluation: undecodable files are left out
      const keep = [...kept.keys()].filter((b) => kept[b]);
      size = keep.length;
      keep.forEach((b, i) => x.copyWithin(i * per, b * per, (b + 1) * per));
      xs = x.slice(0, size * per);
      ls = Int32Array.from(keep, (b) => labels[b]!);
    }
    const smoothing = this.opts.smoothing ?? 0;
    if (this.mixup && size > 0) {
      const rng = new Random(mixSeed(this.opts.seed, epoch, index, 0x3a1c));
      const { targets } = applyMixup({ x: xs, labels: ls, size, shape: [c, h, w], classes, smoothing }, this.mixup, rng);
      return { x: xs, labels: ls, targets, size };
    }
    return { x: xs, labels: ls, targets: mixedTargets(ls, size, classes, smoothing, new Float32Array(size).fill(1)), size };
  }

  /** The sample at `pos` of the epoch's order, or (training) the next decodable one after it. */
  private async sampleAt(epoch: number, pos: number): Promise<{ index: number; data: Float32Array } | undefined> {
    const order = this.order(epoch);
    const n = order.length;
    for (let j = 0; j < n; j++) {
      const index = order[(pos + j) % n]!;
      if (!this.bad.has(index)) {
        // a stand-in gets its own augmentation stream, not a copy of its own turn's
        // (and in a balanced epoch, where an image recurs, each turn has its own)
        const seed = j === 0 && !this.opts.balanced ? mixSeed(this.opts.seed, epoch, index) : mixSeed(this.opts.seed, epoch, index, pos);
        const r = await this.decode({ path: this.dataset.paths[index]!, train: this.opts.train, transform: this.transform, seed });
        if (this.closed) throw new Error(`the loader of ${this.dataset.name} was closed while loading`);
        if (r.ok) return { index, data: r.data };
        // the workers failed, not this file
        if (r.fatal) throw new Error(r.message);
        this.reportBad(index, r.message);
      }
      if (!this.opts.train) return undefined;
    }
    throw new ImageDecodeFailure(`none of the ${n} images of ${this.dataset.name} could be decoded (first: ${this.skippedFiles[0]?.message})`);
  }

  private reportBad(index: number, message: string): void {
    if (this.opts.strict) throw new ImageDecodeFailure(`${message} (--strict stops at the first unreadable image; without it the file is skipped)`);
    if (this.bad.has(index)) return;
    this.bad.set(index, message);
    (this.opts.onSkip ?? ((_, m) => console.warn(`skipping an unreadable image: ${m}`)))(this.dataset.paths[index]!, message);
  }

  private async decode(task: SampleTask): Promise<SampleResult> {
    if (this.pool) return this.pool.pool.run(task);
    // on this thread: a few samples at a time, so sharp's threads overlap with the JavaScript transforms
    if (this.inThread >= 4) await new Promise<void>((r) => this.inThreadQueue.push(r));
    this.inThread++;
    try {
      const { runSampleTask } = await import('../transforms/image_pipeline.js');
      return { ok: true, data: await runSampleTask(task) };
    } catch (e) {
      return { ok: false, message: (e as Error).message };
    } finally {
      this.inThread--;
      this.inThreadQueue.shift()?.();
    }
  }

  release(batch: Batch): void {
    const key = this.keys.get(batch);
    if (key === undefined) return;
    this.keys.delete(batch);
    this.cache.delete(key);
    const buffer = batch.x.buffer;
    // a compacted evaluation batch is a copy of part of its buffer: nothing to reuse
    if (buffer instanceof ArrayBuffer && batch.x.byteOffset === 0 && batch.x.byteLength === buffer.byteLength && this.spare.length < 2) this.spare.push(buffer);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cache.clear();
    await this.pool?.release();
  }
}

/** Batches of `dataset` for training or evaluation; see ImageLoaderOptions. Call close() when done. */
export function createImageLoader(dataset: ImageSamples, opts: ImageLoaderOptions): ImageLoader {
  return new ImageLoader(dataset, opts);
}
