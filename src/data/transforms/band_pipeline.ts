/**
 * timm's eval and training transforms on band images (any channel count, float samples), as
 * torchvision runs them on a float tensor read from a multispectral file: the same crop boxes
 * as the 8-bit pipeline, PIL's resampling filters with float arithmetic (PIL's 'F' mode: double
 * coefficients, no rounding), Normalize per band. ColorJitter and RandAugment are defined on RGB
 * and are refused for band images.
 */
import type { Random } from '../../random.js';
import type { BandImage } from '../image/band_decode.js';
import { ImageDecodeError } from '../image/image_decode.js';
import { centerCropBox, evalResizeSize, randomResizedCropBox, resizeShorterSide, type CropBox } from './geometry.js';
import { bicubic, bilinear } from './resample.js';
import { randomErasing } from './tensor_transforms.js';
import type { EvalTransform, Interpolation, ResolvedImageTransform } from './transform_config.js';

/** PIL's precompute_coeffs for one axis, normalised, in double (the 32-bit-float path keeps them so). */
function axisWeights(inSize: number, outSize: number, interpolation: Interpolation): { first: Int32Array; taps: Int32Array; weights: Float64Array; ksize: number } {
  const [filter, baseSupport] = interpolation === 'bicubic' ? [bicubic, 2] : [bilinear, 1];
  const scale = inSize / outSize;
  const filterscale = Math.max(1, scale);
  const support = baseSupport * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize), taps = new Int32Array(outSize), weights = new Float64Array(outSize * ksize);
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - lo;
    let sum = 0;
    for (let k = 0; k < n; k++) sum += (weights[o * ksize + k] = filter((k + lo - center + 0.5) / filterscale));
    if (sum !== 0) for (let k = 0; k < n; k++) weights[o * ksize + k]! /= sum;
    first[o] = lo;
    taps[o] = n;
  }
  return { first, taps, weights, ksize };
}

/** PIL's Image.resize on float bands: horizontal pass, then vertical, each stored as float32. */
export function resampleBands(img: BandImage, width: number, height: number, interpolation: Interpolation): BandImage {
  let cur = img;
  const c = img.channels;
  if (width !== cur.width) {
    const k = axisWeights(cur.width, width, interpolation);
    const out = new Float32Array(width * cur.height * c);
    for (let y = 0; y < cur.height; y++) {
      for (let x = 0; x < width; x++) {
        for (let ch = 0; ch < c; ch++) {
          let s = 0;
          for (let t = 0; t < k.taps[x]!; t++) s += cur.data[((y * cur.width) + k.first[x]! + t) * c + ch]! * k.weights[x * k.ksize + t]!;
          out[(y * width + x) * c + ch] = s;
        }
      }
    }
    cur = { ...cur, data: out, width };
  }
  if (height !== cur.height) {
    const k = axisWeights(cur.height, height, interpolation);
    const stride = cur.width * c;
    const out = new Float32Array(stride * height);
    const acc = new Float64Array(stride);
    for (let y = 0; y < height; y++) {
      acc.fill(0);
      for (let t = 0; t < k.taps[y]!; t++) {
        const w = k.weights[y * k.ksize + t]!, row = (k.first[y]! + t) * stride;
        for (let i = 0; i < stride; i++) acc[i] += cur.data[row + i]! * w;
      }
      out.set(acc, y * stride);
    }
    cur = { ...cur, data: out, height };
  }
  return cur;
}

export function cropBands(img: BandImage, box: CropBox): BandImage {
  const c = img.channels;
  const out = new Float32Array(box.width * box.height * c);
  for (let y = 0; y < box.height; y++) {
    const sy = box.top + y;
    if (sy < 0 || sy >= img.height) continue; // torchvision pads a crop larger than the image with 0
    for (let x = 0; x < box.width; x++) {
      const sx = box.left + x;
      if (sx < 0 || sx >= img.width) continue;
      for (let ch = 0; ch < c; ch++) out[(y * box.width + x) * c + ch] = img.data[(sy * img.width + sx) * c + ch]!;
    }
  }
  return { ...img, data: out, width: box.width, height: box.height };
}

function mirror(img: BandImage, horizontal: boolean): BandImage {
  const { width: w, height: h, channels: c } = img;
  const out = new Float32Array(img.data.length);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [sy, sx] = horizontal ? [y, w - 1 - x] : [h - 1 - y, x];
      for (let ch = 0; ch < c; ch++) out[(y * w + x) * c + ch] = img.data[(sy * w + sx) * c + ch]!;
    }
  }
  return { ...img, data: out };
}

/** HWC [0, 1] samples → normalised CHW float32 (torchvision's Normalize, in float32 arithmetic). */
export function bandsToNormalizedChw(img: BandImage, mean: readonly number[], std: readonly number[], out?: Float32Array): Float32Array {
  const { width: w, height: h, channels: c } = img;
  const plane = w * h;
  const data = out ?? new Float32Array(c * plane);
  const f = Math.fround;
  for (let ch = 0; ch < c; ch++) {
    const m = f(mean[ch] ?? mean[0]!), s = f(std[ch] ?? std[0]!);
    for (let i = 0; i < plane; i++) data[ch * plane + i] = f(f(img.data[i * c + ch]! - m) / s);
  }
  return data;
}

function checkChannels(img: BandImage, channels: number, label: string): void {
  if (img.channels !== channels) {
    throw new ImageDecodeError(`${label}: has ${img.channels} bands, the model expects ${channels} input channels (in_chans)`);
  }
}

/** The eval transform's geometry (Resize(floor(size / crop_pct)) → CenterCrop(size)) on a band image. */
export function evalBands(img: BandImage, t: EvalTransform, label: string): BandImage {
  const [c, h, w] = t.inputSize;
  checkChannels(img, c, label);
  const size = evalResizeSize(h, w, t.cropPct);
  const [rw, rh] = resizeShorterSide(img.width, img.height, size);
  const resized = resampleBands(img, rw, rh, t.interpolation);
  return cropBands(resized, centerCropBox(rh, rw, h, w));
}

export function evalBandSample(img: BandImage, t: EvalTransform, label: string, out?: Float32Array): Float32Array {
  return bandsToNormalizedChw(evalBands(img, t, label), t.mean, t.std, out);
}

/** RandomResizedCrop → flips → Normalize → RandomErasing, drawing from `rng` in the 8-bit pipeline's order. */
export function trainBandSample(img: BandImage, t: ResolvedImageTransform, rng: Random, label: string, out?: Float32Array): Float32Array {
  const [c, h, w] = t.eval.inputSize;
  checkChannels(img, c, label);
  if (t.randAugment || t.colorJitter) {
    throw new ImageDecodeError(`${label}: RandAugment and colour jitter are defined for RGB images, not ${img.channels}-band ones (pass --color-jitter 0 and no --aa)`);
  }
  const box = randomResizedCropBox(img.height, img.width, t, rng);
  const interpolation: Interpolation = t.trainInterpolation === 'random' ? (rng.int(2) === 0 ? 'bilinear' : 'bicubic') : t.trainInterpolation;
  const flop = t.hflip > 0 && rng.uniform() < t.hflip;
  const flip = t.vflip > 0 && rng.uniform() < t.vflip;
  let cur = resampleBands(cropBands(img, box), w, h, interpolation);
  if (flop) cur = mirror(cur, true);
  if (flip) cur = mirror(cur, false);
  const data = bandsToNormalizedChw(cur, t.eval.mean, t.eval.std, out);
  if (t.reprob > 0) randomErasing({ data, c, h, w }, { probability: t.reprob, mode: t.remode }, rng);
  return data;
}
