/**
 * DINO's multi-crop augmentation (DataAugmentationDINO in facebookresearch/dino's main_dino.py)
 * on 8-bit images with the pixel pipeline's PIL arithmetic: each view is a RandomResizedCrop
 * (bicubic), a horizontal flip (p 0.5), ColorJitter(0.4, 0.4, 0.2, 0.1) with p 0.8, grayscale
 * with p 0.2 and a Gaussian blur of radius U(0.1, 2) — with p 1.0 on the first global view, 0.1
 * on the second (which is also solarised with p 0.2) and 0.5 on the local views.
 *
 * The blur is a true separable Gaussian (σ = radius, taps to 3σ, edges clamped); PIL's
 * GaussianBlur approximates the same Gaussian with three box passes, so blurred pixels may differ
 * from PIL's by a few levels.
 */
import type { Random } from '../../random.js';
import { colorJitter } from './color_jitter.js';
import { randomResizedCropBox } from './geometry.js';
import { advance, cropPixels, flipHorizontal, newPixelImage, releasePixels, solarize, toGrayscale, toNormalizedChw, type PixelImage } from './pixels.js';
import { resamplePixels } from './resample.js';

export interface MultiCropOptions {
  globalSize: number;
  localSize: number;
  localCrops: number;
  globalScale: readonly [number, number];
  localScale: readonly [number, number];
  mean: readonly number[];
  std: readonly number[];
}

/** The per-view probabilities DINO sets: blur, solarisation. */
const VIEW_KINDS = {
  global1: { size: 'global', blur: 1.0, solarize: 0 },
  global2: { size: 'global', blur: 0.1, solarize: 0.2 },
  local: { size: 'local', blur: 0.5, solarize: 0 },
} as const;

/** Inverse of ToTensor + Normalize: float CHW → uint8 HWC, rounded and clamped (a loader's already-normalised image). */
export function pixelsFromNormalizedChw(x: Float32Array, [c, h, w]: readonly [number, number, number], mean: readonly number[], std: readonly number[]): PixelImage {
  const img = newPixelImage(w, h, c);
  const plane = h * w;
  for (let ch = 0; ch < c; ch++) {
    const m = mean[ch] ?? mean[0]!, s = std[ch] ?? std[0]!;
    for (let i = 0; i < plane; i++) img.data[i * c + ch] = Math.min(255, Math.max(0, Math.round((x[ch * plane + i]! * s + m) * 255)));
  }
  return img;
}

/** torchvision RandomGrayscale: the luma in every channel (3 channels stay 3). */
function grayscaleKeepChannels(img: PixelImage): PixelImage {
  if (img.channels === 1) return img;
  const gray = toGrayscale(img);
  const out = newPixelImage(img.width, img.height, 3);
  for (let i = 0; i < gray.data.length; i++) out.data.fill(gray.data[i]!, 3 * i, 3 * i + 3);
  releasePixels(gray);
  return out;
}

/** A separable Gaussian blur of standard deviation `sigma` (PIL's GaussianBlur radius), edges clamped. */
export function gaussianBlur(img: PixelImage, sigma: number): PixelImage {
  const r = Math.max(1, Math.ceil(3 * sigma));
  const k = Float64Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const total = k.reduce((a, b) => a + b, 0);
  for (let i = 0; i < k.length; i++) k[i]! /= total;
  const { width: w, height: h, channels: c } = img;
  const pass = (src: Float64Array, horizontal: boolean): Float64Array => {
    const out = new Float64Array(src.length);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let ch = 0; ch < c; ch++) {
          let acc = 0;
          for (let t = -r; t <= r; t++) {
            const xx = horizontal ? Math.min(w - 1, Math.max(0, x + t)) : x;
            const yy = horizontal ? y : Math.min(h - 1, Math.max(0, y + t));
            acc += k[t + r]! * src[(yy * w + xx) * c + ch]!;
          }
          out[(y * w + x) * c + ch] = acc;
        }
      }
    }
    return out;
  };
  const blurred = pass(pass(Float64Array.from(img.data), true), false);
  const out = newPixelImage(w, h, c);
  for (let i = 0; i < blurred.length; i++) out.data[i] = Math.min(255, Math.max(0, Math.round(blurred[i]!)));
  return out;
}

/** One DINO view of `src` (not consumed): crop, flip, jitter, grayscale, blur, solarise, normalise → float CHW. */
export function dinoView(src: PixelImage, kind: keyof typeof VIEW_KINDS, o: MultiCropOptions, rng: Random): Float32Array {
  const v = VIEW_KINDS[kind];
  const size = v.size === 'global' ? o.globalSize : o.localSize;
  const box = randomResizedCropBox(src.height, src.width, { scale: v.size === 'global' ? o.globalScale : o.localScale, ratio: [3 / 4, 4 / 3] }, rng);
  let img = cropPixels(src, box.top, box.left, box.height, box.width);
  img = advance(img, resamplePixels(img, size, size, 'bicubic'));
  if (rng.uniform() < 0.5) img = advance(img, flipHorizontal(img));
  if (rng.uniform() < 0.8) img = colorJitter(img, { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1 }, rng);
  if (rng.uniform() < 0.2) img = advance(img, grayscaleKeepChannels(img));
  // utils.GaussianBlur draws its radius only when it blurs
  if (rng.uniform() <= v.blur) img = advance(img, gaussianBlur(img, 0.1 + rng.uniform() * 1.9));
  if (v.solarize > 0 && rng.uniform() < v.solarize) img = advance(img, solarize(img, 128));
  const out = toNormalizedChw(img, o.mean, o.std);
  releasePixels(img);
  return out;
}

export interface DinoViews {
  globals: [Float32Array, Float32Array];
  locals: Float32Array[];
}

/** DataAugmentationDINO's crops of one image: 2 global views and `localCrops` local ones, in that order. */
export function dinoViews(src: PixelImage, o: MultiCropOptions, rng: Random): DinoViews {
  const globals: [Float32Array, Float32Array] = [dinoView(src, 'global1', o, rng), dinoView(src, 'global2', o, rng)];
  const locals = Array.from({ length: o.localCrops }, () => dinoView(src, 'local', o, rng));
  return { globals, locals };
}
