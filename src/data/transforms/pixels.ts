/**
 * 8-bit images (HWC, 1 or 3 channels) and the pixel operations torchvision and timm run on PIL
 * images, with PIL's arithmetic: lookup tables for the point ops, float32 blends truncated to
 * uint8 for the ImageEnhance family, PIL's luma weights for grayscale. The random transforms
 * (RandAugment, ColorJitter) are built from these. The hot loops run on WebAssembly where it
 * loads (../kernels/*.as.ts, the same arithmetic); the JavaScript loops here are the reference.
 */
import { normalizeRgbWasm } from '../kernels/normalize.js';
import { applyLutWasm, histogramsWasm, saturationWasm, sharpnessWasm } from '../kernels/point_ops.js';

export interface PixelImage {
  /** uint8, row-major, channels interleaved (what sharp's raw output gives) */
  data: Uint8Array;
  width: number;
  height: number;
  /** 1 (L) or 3 (RGB) */
  channels: number;
}

/**
 * Pixel buffers are recycled: fresh 150 kB buffers cost page faults and GC work that dwarf the
 * pixel loops. newPixelImage hands out a released buffer of the same size when there is one
 * (its contents are stale: every op writes all of its output); releasePixels gives one back.
 */
const freeBuffers = new Map<number, Uint8Array[]>();
const pooled = new WeakSet<Uint8Array>();

export function newPixelImage(width: number, height: number, channels: number): PixelImage {
  const n = width * height * channels;
  const data = freeBuffers.get(n)?.pop() ?? new Uint8Array(n);
  pooled.add(data);
  return { data, width, height, channels };
}

/** `next`, after releasing `prev` when an op returned a new image (for chains of ops that own their input). */
export function advance(prev: PixelImage, next: PixelImage): PixelImage {
  if (next !== prev) releasePixels(prev);
  return next;
}

/** Returns `img`'s buffer for reuse; the caller must not touch `img` again. Buffers not from newPixelImage are ignored. */
export function releasePixels(img: PixelImage): void {
  if (!pooled.has(img.data)) return;
  const list = freeBuffers.get(img.data.length) ?? [];
  if (list.length < 4 && !list.includes(img.data)) list.push(img.data);
  freeBuffers.set(img.data.length, list);
}

/** PIL's convert('L'): ITU-R 601-2 luma with 16-bit fixed-point weights, rounded. */
export function toGrayscale(img: PixelImage): PixelImage {
  if (img.channels === 1) return img;
  const out = newPixelImage(img.width, img.height, 1);
  const src = img.data;
  for (let i = 0, j = 0; i < out.data.length; i++, j += 3) {
    out.data[i] = (src[j]! * 19595 + src[j + 1]! * 38470 + src[j + 2]! * 7471 + 0x8000) >>> 16;
  }
  return out;
}

export function flipHorizontal(img: PixelImage): PixelImage {
  const { width: w, height: h, channels: c } = img;
  const out = newPixelImage(w, h, c);
  for (let y = 0; y < h; y++) {
    const row = y * w * c;
    for (let x = 0; x < w; x++) {
      const s = row + (w - 1 - x) * c;
      const d = row + x * c;
      for (let k = 0; k < c; k++) out.data[d + k] = img.data[s + k]!;
    }
  }
  return out;
}

export function flipVertical(img: PixelImage): PixelImage {
  const { width: w, height: h, channels: c } = img;
  const out = newPixelImage(w, h, c);
  const rowLen = w * c;
  for (let y = 0; y < h; y++) out.data.set(img.data.subarray((h - 1 - y) * rowLen, (h - y) * rowLen), y * rowLen);
  return out;
}

/**
 * A crop of `img` at (top, left) of size height × width; parts outside the image are zero, as
 * torchvision's CenterCrop pads when the crop is larger than the image.
 */
export function cropPixels(img: PixelImage, top: number, left: number, height: number, width: number): PixelImage {
  const c = img.channels;
  const out = newPixelImage(width, height, c);
  const x0 = Math.max(0, left), x1 = Math.min(img.width, left + width);
  if (top < 0 || left < 0 || top + height > img.height || left + width > img.width) out.data.fill(0);
  if (x1 <= x0) return out;
  for (let y = 0; y < height; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= img.height) continue;
    const src = img.data.subarray((sy * img.width + x0) * c, (sy * img.width + x1) * c);
    out.data.set(src, (y * width + (x0 - left)) * c);
  }
  return out;
}

/** Applies one 256-entry table per channel (PIL's Image.point / ImageOps._lut). */
export function applyLut(img: PixelImage, luts: readonly Uint8Array[]): PixelImage {
  const out = newPixelImage(img.width, img.height, img.channels);
  const c = img.channels, src = img.data, dst = out.data, n = src.length;
  const tables = new Uint8Array(256 * c);
  for (let k = 0; k < c; k++) tables.set(luts[k] ?? luts[0]!, 256 * k);
  if (applyLutWasm(src, dst, c, tables)) return out;
  if (luts.length === 1 || c === 1) {
    const lut = luts[0]!;
    for (let i = 0; i < n; i++) dst[i] = lut[src[i]!]!;
    return out;
  }
  for (let k = 0; k < c; k++) {
    const lut = luts[k] ?? luts[0]!;
    for (let i = k; i < n; i += c) dst[i] = lut[src[i]!]!;
  }
  return out;
}

const lutOf = (f: (v: number) => number): Uint8Array => Uint8Array.from({ length: 256 }, (_, v) => Math.max(0, Math.min(255, f(v))));

function histograms(img: PixelImage): Uint32Array[] {
  const c = img.channels, src = img.data;
  const counted = histogramsWasm(src, c);
  if (counted) return Array.from({ length: c }, (_, k) => counted.subarray(k * 256, (k + 1) * 256));
  const all = new Uint32Array(256 * c);
  for (let i = 0, k = 0; i < src.length; i++) {
    all[k * 256 + src[i]!]!++;
    if (++k === c) k = 0;
  }
  return Array.from({ length: c }, (_, k) => all.subarray(k * 256, (k + 1) * 256));
}

export const invert = (img: PixelImage): PixelImage => applyLut(img, [lutOf((v) => 255 - v)]);

/** ImageOps.solarize: values at or above the threshold are inverted. */
export const solarize = (img: PixelImage, threshold: number): PixelImage => applyLut(img, [lutOf((v) => (v < threshold ? v : 255 - v))]);

/** timm's solarize_add: values below the threshold get `add`, saturating. */
export const solarizeAdd = (img: PixelImage, add: number, threshold = 128): PixelImage =>
  applyLut(img, [lutOf((v) => (v < threshold ? Math.min(255, v + add) : v))]);

/** ImageOps.posterize: keep the top `bits` bits (8 or more: unchanged). */
export function posterize(img: PixelImage, bits: number): PixelImage {
  if (bits >= 8) return img;
  const mask = ~(2 ** (8 - Math.max(0, bits)) - 1);
  return applyLut(img, [lutOf((v) => v & mask)]);
}

/** ImageOps.autocontrast (cutoff 0): each channel's [lo, hi] stretched to [0, 255], truncated. */
export function autocontrast(img: PixelImage): PixelImage {
  const luts = histograms(img).map((h) => {
    let lo = 0;
    while (lo < 256 && !h[lo]) lo++;
    let hi = 255;
    while (hi >= 0 && !h[hi]) hi--;
    if (hi <= lo) return lutOf((v) => v);
    const scale = 255 / (hi - lo);
    const offset = -lo * scale;
    return lutOf((v) => Math.trunc(v * scale + offset));
  });
  return applyLut(img, luts);
}

/** ImageOps.equalize: PIL's cumulative-histogram table per channel. */
export function equalize(img: PixelImage): PixelImage {
  const luts = histograms(img).map((h) => {
    const used = [...h].filter((n) => n > 0);
    if (used.length <= 1) return lutOf((v) => v);
    const step = Math.floor((used.reduce((a, b) => a + b, 0) - used[used.length - 1]!) / 255);
    if (!step) return lutOf((v) => v);
    const lut = new Uint8Array(256);
    let n = Math.floor(step / 2);
    for (let i = 0; i < 256; i++) {
      lut[i] = Math.min(255, Math.floor(n / step));
      n += h[i]!;
    }
    return lut;
  });
  return applyLut(img, luts);
}

/** One step of Image.blend(degenerate, img, factor) in PIL's float32 arithmetic, truncated and clipped to uint8. */
const blendValue = (d: number, v: number, a: number): number => {
  const t = Math.fround(d + Math.fround(a * (v - d)));
  return t <= 0 ? 0 : t >= 255 ? 255 : Math.trunc(t);
};

/** A blend against a constant degenerate image is a table over the 256 input values. */
const blendWithConstant = (img: PixelImage, d: number, factor: number): PixelImage => {
  const a = Math.fround(factor);
  return applyLut(img, [lutOf((v) => blendValue(d, v, a))]);
};

/** ImageEnhance.Brightness: blend with black. */
export const adjustBrightness = (img: PixelImage, factor: number): PixelImage => blendWithConstant(img, 0, factor);

/** ImageEnhance.Contrast: blend with the rounded mean of the grayscale image. */
export function adjustContrast(img: PixelImage, factor: number): PixelImage {
  const src = img.data;
  let sum = 0;
  if (img.channels === 1) for (let i = 0; i < src.length; i++) sum += src[i]!;
  else for (let i = 0; i < src.length; i += 3) sum += (src[i]! * 19595 + src[i + 1]! * 38470 + src[i + 2]! * 7471 + 0x8000) >>> 16;
  return blendWithConstant(img, Math.trunc(sum / (img.width * img.height) + 0.5), factor);
}

/** ImageEnhance.Color (saturation): blend with the image's grayscale (PIL's convert('L').convert('RGB')). */
export function adjustSaturation(img: PixelImage, factor: number): PixelImage {
  if (img.channels === 1) return img;
  const out = newPixelImage(img.width, img.height, 3);
  const a = Math.fround(factor), src = img.data, dst = out.data;
  if (saturationWasm(src, dst, a)) return out;
  for (let i = 0; i < src.length; i += 3) {
    const l = (src[i]! * 19595 + src[i + 1]! * 38470 + src[i + 2]! * 7471 + 0x8000) >>> 16;
    dst[i] = blendValue(l, src[i]!, a);
    dst[i + 1] = blendValue(l, src[i + 1]!, a);
    dst[i + 2] = blendValue(l, src[i + 2]!, a);
  }
  return out;
}

/** ImageEnhance.Sharpness: blend with ImageFilter.SMOOTH (3×3 [1 1 1; 1 5 1; 1 1 1] / 13, border pixels kept). */
export function adjustSharpness(img: PixelImage, factor: number): PixelImage {
  const { width: w, height: h, channels: c } = img;
  const src = img.data;
  const out = newPixelImage(w, h, c);
  const dst = out.data;
  const a = Math.fround(factor);
  if (sharpnessWasm(src, dst, w, h, c, a)) return out;
  // a border pixel's smoothed value is itself, and blending a value with itself returns it
  dst.set(src);
  const k = Math.fround(1 / 13), k5 = Math.fround(5 / 13);
  const stride = w * c;
  for (let y = 1; y < h - 1; y++) {
    // every channel of every interior pixel of the row: the neighbours sit at fixed offsets
    for (let i = y * stride + c, end = (y + 1) * stride - c; i < end; i++) {
      const up = i - stride, down = i + stride;
      const ring = src[up - c]! + src[up]! + src[up + c]! + src[i - c]! + src[i + c]! + src[down - c]! + src[down]! + src[down + c]!;
      const v = 0.5 + ring * k + src[i]! * k5;
      dst[i] = blendValue(v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v), src[i]!, a);
    }
  }
  return out;
}

/** torchvision's adjust_hue on PIL: shift PIL's 8-bit HSV hue by hueFactor·255 (mod 256). */
export function adjustHue(img: PixelImage, hueFactor: number): PixelImage {
  if (img.channels === 1) return img;
  const shift = ((Math.trunc(hueFactor * 255) % 256) + 256) % 256;
  const out = newPixelImage(img.width, img.height, 3);
  const s = img.data, o = out.data;
  for (let i = 0; i < s.length; i += 3) {
    const r = s[i]!, g = s[i + 1]!, b = s[i + 2]!;
    const maxc = r > g ? (r > b ? r : b) : g > b ? g : b, minc = r < g ? (r < b ? r : b) : g < b ? g : b;
    let hh = 0, ss = 0;
    if (maxc !== minc) {
      const cr = maxc - minc;
      ss = Math.min(255, Math.trunc((cr / maxc) * 255));
      const rc = (maxc - r) / cr, gc = (maxc - g) / cr, bc = (maxc - b) / cr;
      let hue = r === maxc ? bc - gc : g === maxc ? 2 + rc - bc : 4 + gc - rc;
      hue = (hue / 6 + 1) % 1;
      hh = Math.min(255, Math.trunc(hue * 255));
    }
    hh = (hh + shift) & 255;
    hsvToRgb(hh, ss, maxc, o, i);
  }
  return out;
}

/** PIL's hsv2rgb for one pixel. */
function hsvToRgb(h: number, s: number, v: number, out: Uint8Array, i: number): void {
  if (s === 0) {
    out[i] = out[i + 1] = out[i + 2] = v;
    return;
  }
  const sector = Math.floor((h * 6) / 255);
  const f = (h * 6) / 255 - sector;
  const fs = s / 255;
  const p = clipRound(v * (1 - fs)), q = clipRound(v * (1 - fs * f)), t = clipRound(v * (1 - fs * (1 - f)));
  let r = v, g = p, b = q;
  switch (sector % 6) {
    case 0: r = v; g = t; b = p; break;
    case 1: r = q; g = v; b = p; break;
    case 2: r = p; g = v; b = t; break;
    case 3: r = p; g = q; b = v; break;
    case 4: r = t; g = p; b = v; break;
  }
  out[i] = r;
  out[i + 1] = g;
  out[i + 2] = b;
}

const clipRound = (x: number) => (x <= 0 ? 0 : x >= 255 ? 255 : Math.round(x));

/**
 * ToTensor + Normalize: uint8 HWC → float CHW, ((v / 255) − mean) / std per channel in
 * torchvision's float32 order (each step rounded to float32). RGB runs on WebAssembly SIMD;
 * elsewhere, a 256-entry table per channel holds the same values.
 */
export function toNormalizedChw(img: PixelImage, mean: readonly number[], std: readonly number[], out?: Float32Array): Float32Array {
  const { width: w, height: h, channels: c } = img;
  const plane = w * h;
  const data = out ?? new Float32Array(c * plane);
  if (c === 3 && normalizeRgbWasm(img.data, plane, mean, std, data)) return data;
  const f = Math.fround;
  const src = img.data;
  for (let ch = 0; ch < c; ch++) {
    const m = f(mean[ch] ?? mean[0]!), s = f(std[ch] ?? std[0]!);
    const lut = Float32Array.from({ length: 256 }, (_, v) => f(f(f(v / 255) - m) / s));
    const base = ch * plane;
    for (let i = 0, j = ch; i < plane; i++, j += c) data[base + i] = lut[src[j]!]!;
  }
  return data;
}
