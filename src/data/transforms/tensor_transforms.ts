/**
 * Host-side augmentation for in-memory tensor datasets (28×28, 32×32), with torchvision/timm
 * semantics. Every transform is `(image, rng) => image` on a float CHW image; randomness comes
 * from a per-sample stream, so a run reproduces and resumes exactly.
 */
import type { Random } from '../../random.js';

export interface FloatImage { data: Float32Array; c: number; h: number; w: number }

/** uint8 CHW → float in [0, 1]. */
export function toFloatImage(pixels: Uint8Array, c: number, h: number, w: number): FloatImage {
  const data = new Float32Array(c * h * w);
  for (let i = 0; i < data.length; i++) data[i] = pixels[i]! / 255;
  return { data, c, h, w };
}

/** torchvision RandomCrop(size, padding=p): zero-pad by p, then crop the original size at a random offset. */
export function randomCropWithPadding(img: FloatImage, pad: number, rng: Random): FloatImage {
  if (pad <= 0) return img;
  const { c, h, w } = img;
  const top = rng.int(2 * pad + 1) - pad;
  const left = rng.int(2 * pad + 1) - pad;
  const out = new Float32Array(c * h * w);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      const sy = y + top;
      if (sy < 0 || sy >= h) continue;
      for (let x = 0; x < w; x++) {
        const sx = x + left;
        if (sx >= 0 && sx < w) out[(ch * h + y) * w + x] = img.data[(ch * h + sy) * w + sx]!;
      }
    }
  }
  return { ...img, data: out };
}

export function horizontalFlip(img: FloatImage, p: number, rng: Random): FloatImage {
  if (!(rng.uniform() < p)) return img;
  const { c, h, w } = img;
  const out = new Float32Array(img.data.length);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      const row = (ch * h + y) * w;
      for (let x = 0; x < w; x++) out[row + x] = img.data[row + w - 1 - x]!;
    }
  }
  return { ...img, data: out };
}

/** (x − mean) / std per channel, in place. */
export function normalize(img: FloatImage, mean: readonly number[], std: readonly number[]): FloatImage {
  const plane = img.h * img.w;
  for (let ch = 0; ch < img.c; ch++) {
    const m = mean[ch] ?? mean[0]!;
    const s = std[ch] ?? std[0]!;
    for (let i = ch * plane; i < (ch + 1) * plane; i++) img.data[i] = (img.data[i]! - m) / s;
  }
  return img;
}

export interface RandomErasingOptions { probability: number; mode: 'pixel' | 'const'; minArea?: number; maxArea?: number; minAspect?: number }

/**
 * timm's RandomErasing (Zhong et al. 2017) on a normalised image: one rectangle of 2%–1/3 of the
 * area with log-uniform aspect in [0.3, 1/0.3], filled with per-pixel N(0, 1) noise ('pixel') or 0.
 */
export function randomErasing(img: FloatImage, o: RandomErasingOptions, rng: Random): FloatImage {
  if (!(rng.uniform() < o.probability)) return img;
  const { c, h, w } = img;
  const minAspect = o.minAspect ?? 0.3;
  const logRatio = [Math.log(minAspect), Math.log(1 / minAspect)] as const;
  const [lo, hi] = [o.minArea ?? 0.02, o.maxArea ?? 1 / 3];
  for (let attempt = 0; attempt < 10; attempt++) {
    const area = h * w * (lo + rng.uniform() * (hi - lo));
    const aspect = Math.exp(logRatio[0] + rng.uniform() * (logRatio[1] - logRatio[0]));
    const eh = Math.round(Math.sqrt(area * aspect));
    const ew = Math.round(Math.sqrt(area / aspect));
    if (eh < h && ew < w && eh > 0 && ew > 0) {
      const top = rng.int(h - eh + 1);
      const left = rng.int(w - ew + 1);
      for (let ch = 0; ch < c; ch++) {
        for (let y = top; y < top + eh; y++) {
          for (let x = left; x < left + ew; x++) img.data[(ch * h + y) * w + x] = o.mode === 'pixel' ? rng.normal() : 0;
        }
      }
      return img;
    }
  }
  return img;
}
