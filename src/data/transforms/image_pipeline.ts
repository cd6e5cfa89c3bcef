/**
 * One sample through timm's transforms (timm/data/transforms_factory.py), in timm's order:
 *   train: RandomResizedCrop(+interpolation) → hflip → vflip → RandAugment | ColorJitter →
 *          ToTensor → Normalize → RandomErasing
 *   eval:  Resize(floor(size / crop_pct)) → CenterCrop(size) → ToTensor → Normalize
 * Every random choice comes from the `rng` the caller seeds per (seed, epoch, index), so a
 * sample's pixels never depend on which worker made them.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isMainThread } from 'node:worker_threads';
import { Random } from '../../random.js';
import { colorJitter } from './color_jitter.js';
import { centerCropBox, evalResizeSize, randomResizedCropBox, resizeShorterSide } from './geometry.js';
import { ImageDecodeError, decodeResized, decodeResizedCrop } from '../image/image_decode.js';
import { advance, cropPixels, releasePixels, toGrayscale, toNormalizedChw, type PixelImage } from './pixels.js';
import { randAugment } from './rand_augment.js';
import { randomErasing } from './tensor_transforms.js';
import { decodeBandsIfNeeded } from '../image/band_decode.js';
import { evalBandSample, trainBandSample } from './band_pipeline.js';
import type { EvalTransform, Interpolation, ResolvedImageTransform } from './transform_config.js';

type Input = string | Uint8Array;

/** The model's channel count: PIL's convert('L') for one channel, RGB otherwise. */
const toModelChannels = (img: PixelImage, channels: number): PixelImage => (channels === 1 ? advance(img, toGrayscale(img)) : img);

/** Training transform → normalised CHW floats of inputSize (written into `out` when given). */
export async function trainSample(input: Input, t: ResolvedImageTransform, rng: Random, label = typeof input === 'string' ? input : 'image', out?: Float32Array): Promise<Float32Array> {
  const [c, h, w] = t.eval.inputSize;
  // more than 8 bits or other than 1/3 bands: the float band pipeline (band_pipeline.ts)
  // (colour augmentation is defined on 8-bit RGB: a 1/3-channel model with it reads deep files in 8 bits)
  const colourAugment = (c === 1 || c === 3) && (t.randAugment || t.colorJitter);
  if (!colourAugment) {
    const read = await decodeBandsIfNeeded(input, c, label);
    if (!(read instanceof Uint8Array)) return trainBandSample(read, t, rng, label, out);
    input = read;
  }
  const pick = (): Interpolation => (t.trainInterpolation === 'random' ? (rng.int(2) === 0 ? 'bilinear' : 'bicubic') : t.trainInterpolation);
  // the flips are drawn here, in timm's order, and run inside the decoding pipeline
  let img = await decodeResizedCrop(input, (iw, ih) => {
    const box = randomResizedCropBox(ih, iw, t, rng);
    const interpolation = pick();
    const flop = t.hflip > 0 && rng.uniform() < t.hflip;
    const flip = t.vflip > 0 && rng.uniform() < t.vflip;
    return { box, interpolation, flop, flip };
  }, w, h, label);
  img = toModelChannels(img, c);
  if (t.randAugment) {
    const interpolation = t.trainInterpolation === 'random' ? 'random' : t.trainInterpolation;
    img = randAugment(img, t.randAugment, { fill: t.fill, interpolation }, rng);
  } else if (t.colorJitter) img = colorJitter(img, t.colorJitter, rng);
  const data = toNormalizedChw(img, t.eval.mean, t.eval.std, out);
  releasePixels(img);
  if (t.reprob > 0) randomErasing({ data, c, h, w }, { probability: t.reprob, mode: t.remode }, rng);
  return data;
}

/** The eval transform as 8-bit pixels in the model's channels (before ToTensor/Normalize). */
export async function evalPixels(input: Input, t: EvalTransform, label = typeof input === 'string' ? input : 'image'): Promise<PixelImage> {
  const [c, h, w] = t.inputSize;
  const size = evalResizeSize(h, w, t.cropPct);
  const resized = await decodeResized(input, (iw, ih) => resizeShorterSide(iw, ih, size), t.interpolation, label);
  const box = centerCropBox(resized.height, resized.width, h, w);
  return toModelChannels(advance(resized, cropPixels(resized, box.top, box.left, h, w)), c);
}

/** Eval transform → normalised CHW floats of inputSize (written into `out` when given). */
export async function evalSample(input: Input, t: EvalTransform, label = typeof input === 'string' ? input : 'image', out?: Float32Array): Promise<Float32Array> {
  const read = await decodeBandsIfNeeded(input, t.inputSize[0], label);
  if (!(read instanceof Uint8Array)) return evalBandSample(read, t, label, out);
  const img = await evalPixels(read, t, label);
  const data = toNormalizedChw(img, t.mean, t.std, out);
  releasePixels(img);
  return data;
}

/** One sample of a loader: what a decoding worker receives (plain data). */
export interface SampleTask {
  path: string;
  train: boolean;
  transform: ResolvedImageTransform;
  /** seed of the sample's random stream: mixSeed(seed, epoch, index) */
  seed: number;
}

/** Reads, decodes and transforms one sample (into `out` when given); errors name the file. */
export async function runSampleTask(t: SampleTask, out?: Float32Array): Promise<Float32Array> {
  let bytes: Buffer;
  try {
    // A decoding worker reads synchronously: its thread has nothing else to do meanwhile, and the
    // asynchronous read costs four round trips through libuv's pool (open, stat, read, close),
    // the pool sharp's decodes queue on. The main thread keeps the asynchronous read.
    bytes = isMainThread ? await readFile(t.path) : readFileSync(t.path);
  } catch (e) {
    throw new ImageDecodeError(`${t.path}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return t.train ? trainSample(bytes, t.transform, new Random(t.seed), t.path, out) : evalSample(bytes, t.transform.eval, t.path, out);
}
