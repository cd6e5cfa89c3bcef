/**
 * PIL's Image.resize (libImaging/Resample.c) for 8-bit images: separable convolution with the
 * triangle (bilinear) or Keys a = −0.5 (bicubic) filter, support widened by the downscale
 * factor (antialiasing), 22-bit fixed-point coefficients, horizontal pass first. Every resize
 * below libvips' shrink-on-load factor runs here (libvips rounds differently, and enlarges with
 * other edge and centre conventions). RGB runs on the WebAssembly SIMD kernels
 * (../kernels/resample.as.ts); these JavaScript passes are their reference and the fallback.
 */
import { advance, newPixelImage, releasePixels, type PixelImage } from './pixels.js';
import type { Interpolation } from './transform_config.js';
import { resampleRgbSimd, type AxisCoefficients } from '../kernels/resample.js';

const PRECISION_BITS = 32 - 8 - 2;

/** PIL's triangle filter (shared with the float resampling of band images) */
export const bilinear = (x: number) => {
  x = Math.abs(x);
  return x < 1 ? 1 - x : 0;
};

/** PIL's Keys a = −0.5 cubic filter */
export const bicubic = (x: number) => {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
};

type Coefficients = AxisCoefficients;

/** PIL's precompute_coeffs + normalize_coeffs_8bpc for one axis (the whole input, no box). */
function coefficients(inSize: number, outSize: number, interpolation: Interpolation): Coefficients {
  const [filter, baseSupport] = interpolation === 'bicubic' ? [bicubic, 2] : [bilinear, 1];
  const scale = inSize / outSize;
  const filterscale = Math.max(1, scale);
  const support = baseSupport * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      k[x] = filter((x + xmin - center + 0.5) / filterscale);
      ww += k[x]!;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x]! / ww : k[x]!;
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

const SCALE = 1 << PRECISION_BITS;

const MAX = 256 * SCALE;
// PIL's clip8(v >> 22); SCALE is a power of two, so the product is exact
const clip8 = (v: number): number => (v <= 0 ? 0 : v >= MAX ? 255 : (v * (1 / SCALE)) | 0);

/** Along rows: each output pixel sums its taps, all channels at once. */
function horizontal(img: PixelImage, width: number, k: Coefficients): PixelImage {
  const { width: inW, height: h, channels: c, data: src } = img;
  const out = newPixelImage(width, h, c);
  const dst = out.data;
  const { ksize, bounds, weights } = k;
  for (let y = 0; y < h; y++) {
    const inRow = y * inW * c, outRow = y * width * c;
    for (let xx = 0; xx < width; xx++) {
      const min = bounds[xx * 2]!, taps = bounds[xx * 2 + 1]!, kb = xx * ksize;
      let a0 = SCALE / 2, a1 = SCALE / 2, a2 = SCALE / 2;
      let at = inRow + min * c;
      if (c === 3) {
        for (let t = 0; t < taps; t++, at += 3) {
          const wt = weights[kb + t]!;
          a0 += src[at]! * wt;
          a1 += src[at + 1]! * wt;
          a2 += src[at + 2]! * wt;
        }
        const o = outRow + xx * 3;
        dst[o] = clip8(a0);
        dst[o + 1] = clip8(a1);
        dst[o + 2] = clip8(a2);
      } else {
        for (let t = 0; t < taps; t++, at += c) a0 += src[at]! * weights[kb + t]!;
        dst[outRow + xx] = clip8(a0);
      }
    }
  }
  return out;
}

/** Down columns, a whole row at a time (contiguous memory): row yy sums weighted input rows. */
function vertical(img: PixelImage, height: number, k: Coefficients): PixelImage {
  const { width: w, channels: c, data: src } = img;
  const stride = w * c;
  const out = newPixelImage(w, height, c);
  const acc = new Float64Array(stride);
  const { ksize, bounds, weights } = k;
  for (let yy = 0; yy < height; yy++) {
    const min = bounds[yy * 2]!, taps = bounds[yy * 2 + 1]!, kb = yy * ksize;
    acc.fill(SCALE / 2);
    for (let t = 0; t < taps; t++) {
      const wt = weights[kb + t]!;
      const row = (min + t) * stride;
      for (let i = 0; i < stride; i++) acc[i] += src[row + i]! * wt;
    }
    const o = yy * stride;
    for (let i = 0; i < stride; i++) out.data[o + i] = clip8(acc[i]!);
  }
  return out;
}

/**
 * Resizes to width × height as PIL's img.resize((width, height), BILINEAR | BICUBIC) does:
 * horizontal pass first. RGB runs on WebAssembly SIMD where available (the JavaScript passes
 * give the same bytes).
 */
export function resamplePixels(img: PixelImage, width: number, height: number, interpolation: Interpolation): PixelImage {
  const h = width !== img.width ? coefficients(img.width, width, interpolation) : undefined;
  const v = height !== img.height ? coefficients(img.height, height, interpolation) : undefined;
  if (!h && !v) return img;
  if (img.channels === 3) {
    const out = newPixelImage(width, height, 3);
    if (resampleRgbSimd(img.data, img.width, img.height, out.data, width, height, h, v)) return out;
    releasePixels(out);
  }
  let out = img;
  if (h) out = horizontal(out, width, h);
  // the horizontal pass's output is ours to recycle, the caller's input is not
  if (v) out = out === img ? vertical(out, height, v) : advance(out, vertical(out, height, v));
  return out;
}
