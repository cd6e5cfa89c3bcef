/**
 * Checking an export: the .onnx file run by ORT against tessera's own executable on the same
 * images (max |Δlogit|), accuracy of exported models on a labelled dataset, and inference speed.
 */
import type { TensorDataset } from '../data/datasets/dataset.js';
import { TensorLoader } from '../data/loader/tensor_loader.js';
import { compileInference } from '../models/executables.js';
import type { ImageModel } from '../models/model.js';
import { Random } from '../random.js';
import type { OnnxModel } from '../runtime/onnx_model.js';
import type { SessionOptions } from '../runtime/session.js';
import { medianSeconds } from '../bench/timing.js';
import { nchwToNhwc, normalizePixelsOnHost } from '../runtime/host_pixels.js';

/** uint8 pixels NCHW (the datasets' layout) with their shape. */
export interface PixelSamples { pixels: Uint8Array; count: number; shape: [number, number, number] }

/** The first `count` images of a dataset, or seeded random pixels when there is none. */
export function samplePixels(shape: [number, number, number], count: number, dataset?: TensorDataset): PixelSamples {
  const per = shape[0] * shape[1] * shape[2];
  if (dataset && dataset.imageShape.join() === shape.join()) {
    const n = Math.min(count, dataset.length);
    return { pixels: dataset.images.slice(0, n * per), count: n, shape };
  }
  const rng = new Random(1234);
  return { pixels: Uint8Array.from({ length: count * per }, () => rng.int(256)), count, shape };
}

export interface ExportCheck {
  samples: number;
  /** max |logit_onnx − logit_tessera| over all samples and classes */
  maxAbsDiff: number;
  /** share of samples whose argmax agrees */
  top1Agreement: number;
}

/**
 * Runs `exported` (by ORT, from its bytes) and the model's compiled executable on the same
 * images: raw pixels for a --preprocess export, host-normalised floats for tessera.
 */
export async function checkAgainstTessera(model: ImageModel, exported: OnnxModel, s: PixelSamples, session: SessionOptions = {}): Promise<ExportCheck> {
  const { mean, std } = exported.meta;
  const nhwc = nchwToNhwc(s.pixels, s.shape);
  const x = normalizePixelsOnHost(nhwc, s.shape, mean, std);
  // a calibrated export's logits are divided by its temperature: so are the reference's
  const exe = await compileInference(model, session, exported.meta.temperature);
  try {
    const ref = (await exe.run({ x })).logits!.data as Float32Array;
    const got = await exported.runPixels(nhwc);
    return compareLogits(ref, got, exported.meta.classNames.length);
  } finally {
    await exe.dispose();
  }
}

export function compareLogits(ref: Float32Array, got: Float32Array, classes: number): ExportCheck {
  let maxAbsDiff = 0;
  let agree = 0;
  const n = ref.length / classes;
  for (let b = 0; b < n; b++) {
    let ra = 0;
    let ga = 0;
    for (let j = 0; j < classes; j++) {
      const i = b * classes + j;
      maxAbsDiff = Math.max(maxAbsDiff, Math.abs(ref[i]! - got[i]!));
      if (ref[i]! > ref[b * classes + ra]!) ra = j;
      if (got[i]! > got[b * classes + ga]!) ga = j;
    }
    if (ra === ga) agree++;
  }
  return { samples: n, maxAbsDiff, top1Agreement: agree / n };
}

export interface DatasetAccuracy { images: number; top1: number; top5: number }

/**
 * Top-1/top-5 of an exported model on a labelled dataset (images normalised as the trainer does).
 * A fold of its own rather than the trainer's `evaluate`: export does not depend on training.
 */
export async function accuracyOn(m: OnnxModel, dataset: TensorDataset, batchSize = 500): Promise<DatasetAccuracy> {
  const [c, h, w] = m.meta.inputSize;
  if (dataset.imageShape.join() !== [c, h, w].join()) {
    throw new Error(`${m.meta.model} expects ${c}×${h}×${w} images but ${dataset.name} has ${dataset.imageShape.join('×')}`);
  }
  const classes = m.meta.classNames.length;
  const k = Math.min(5, classes);
  const loader = new TensorLoader(dataset, { batchSize, shuffle: false, seed: 0, mean: m.meta.mean, std: m.meta.std });
  let [images, top1, top5] = [0, 0, 0];
  for (let i = 0; i < loader.numBatches; i++) {
    const b = await loader.batch(0, i);
    const logits = await m.run(b.x);
    for (let j = 0; j < b.size; j++) {
      const row = logits.subarray(j * classes, (j + 1) * classes);
      const label = b.labels[j]!;
      if (argmax(row) === label) top1++;
      // rank of the true class = classes scoring strictly higher, as the trainer's metrics count it
      let higher = 0;
      for (const v of row) if (v > row[label]!) higher++;
      if (higher < k) top5++;
    }
    images += b.size;
  }
  return { images, top1: top1 / Math.max(1, images), top5: top5 / Math.max(1, images) };
}

/** First index of the largest value (ties: the lowest index, as the trainer's metrics). */
function argmax(row: Float32Array): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
  return best;
}

export interface SpeedResult { batchSize: number; msPerBatch: number; imagesPerSecond: number }

/** Median latency of one run at each batch size (random normalised inputs). */
export async function inferenceSpeed(m: OnnxModel, batchSizes: readonly number[], repeats = 10): Promise<SpeedResult[]> {
  const [c, h, w] = m.meta.inputSize;
  const rng = new Random(7);
  const out: SpeedResult[] = [];
  for (const b of batchSizes) {
    const x = Float32Array.from({ length: b * c * h * w }, () => rng.normal());
    const s = await medianSeconds(() => m.run(x), repeats, 2);
    out.push({ batchSize: b, msPerBatch: s * 1000, imagesPerSecond: b / s });
  }
  return out;
}

export interface Int8Comparison {
  fp32Bytes: number;
  int8Bytes: number;
  /** the int8 model against tessera's fp32 executable on the check samples */
  check: ExportCheck;
  speed: { batchSize: number; fp32Ms: number; int8Ms: number; speedup: number }[];
  accuracy?: { dataset: string; images: number; fp32Top1: number; int8Top1: number; dropPoints: number };
}

export interface CompareOptions {
  samples: PixelSamples;
  /** labelled images for the accuracy comparison */
  dataset?: TensorDataset;
  batchSizes?: readonly number[];
  repeats?: number;
  session?: SessionOptions;
}

/** File size, speed and accuracy of an int8 export against its fp32 export, both run by ORT. */
export async function compareInt8(model: ImageModel, fp32: OnnxModel, int8: OnnxModel, o: CompareOptions): Promise<Int8Comparison> {
  const check = await checkAgainstTessera(model, int8, o.samples, o.session);
  const batchSizes = o.batchSizes ?? [1, 32];
  const [f, q] = [await inferenceSpeed(fp32, batchSizes, o.repeats), await inferenceSpeed(int8, batchSizes, o.repeats)];
  const speed = f.map((s, i) => ({ batchSize: s.batchSize, fp32Ms: s.msPerBatch, int8Ms: q[i]!.msPerBatch, speedup: s.msPerBatch / q[i]!.msPerBatch }));
  let accuracy: Int8Comparison['accuracy'];
  if (o.dataset) {
    const [a, b] = [await accuracyOn(fp32, o.dataset), await accuracyOn(int8, o.dataset)];
    accuracy = { dataset: o.dataset.name, images: a.images, fp32Top1: a.top1, int8Top1: b.top1, dropPoints: 100 * (a.top1 - b.top1) };
  }
  return { fp32Bytes: fp32.bytes.byteLength, int8Bytes: int8.bytes.byteLength, check, speed, accuracy };
}
