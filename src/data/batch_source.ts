/**
 * What the trainer and evaluator consume: numbered batches of an epoch, built on demand. The
 * in-memory tensor loader and the image-folder loader (worker threads, prefetch) both provide it.
 */
import type { Batch } from './tensor_loader.js';

export type { Batch };

export interface BatchSource {
  readonly numBatches: number;
  /** Total images per epoch. */
  readonly length: number;
  readonly classNames: readonly string[];
  /** [C, H, W] of the batches' images */
  readonly imageShape: readonly [number, number, number];
  /** Batch `index` of `epoch`; the same (epoch, index) always gives the same batch. */
  batch(epoch: number, index: number): Batch | Promise<Batch>;
  /** Releases workers and files. */
  close?(): Promise<void>;
}
