/**
 * Preprocessing that can travel inside an exported graph (`tessera export --preprocess`): raw
 * pixels uint8 [B, H, W, C] → normalised float [B, C, H, W], traced with the engine's own ops.
 * Resizing and cropping stay outside: they depend on the source image's size.
 */
import type { Tensor } from '../ir/tensor.js';
import { cast, div, sub, transpose } from '../ops/index.js';

/** One value per channel (a single value is shared by all channels, as timm allows). */
export function perChannel(values: readonly number[], channels: number): Float32Array {
  return Float32Array.from({ length: channels }, (_, c) => values[c] ?? values[0]!);
}

/** ((pixels / 255) − mean) / std over the channel axis, then NHWC → NCHW. */
export function normalizePixels(pixels: Tensor, mean: readonly number[], std: readonly number[]): Tensor {
  const c = pixels.shape[3] as number;
  const g = pixels.graph;
  const m = g.constant(perChannel(mean, c), [c], 'float32');
  const s = g.constant(perChannel(std, c), [c], 'float32');
  const x = div(sub(div(cast(pixels, 'float32'), 255), m), s); // [B, H, W, C], channels broadcast last
  return transpose(x, [0, 3, 1, 2]); // [B, C, H, W]
}

/** The same on the host: uint8 NHWC → normalised float NCHW (for models without --preprocess). */
export function normalizePixelsOnHost(pixels: Uint8Array, [c, h, w]: readonly [number, number, number], mean: readonly number[], std: readonly number[]): Float32Array {
  const m = perChannel(mean, c);
  const s = perChannel(std, c);
  const plane = h * w;
  const n = pixels.length / (plane * c);
  const out = new Float32Array(pixels.length);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < plane; i++) {
      for (let ch = 0; ch < c; ch++) out[(b * c + ch) * plane + i] = (pixels[(b * plane + i) * c + ch]! / 255 - m[ch]!) / s[ch]!;
    }
  }
  return out;
}

/**
 * The inverse for images that came from 8-bit pixels: normalised float NCHW → uint8 NHWC.
 * Exact for such images (rounding removes the float error), which is what lets a --preprocess
 * model serve callers that hand over normalised tensors.
 */
export function pixelsFromNormalized(x: Float32Array, [c, h, w]: readonly [number, number, number], mean: readonly number[], std: readonly number[]): Uint8Array {
  const m = perChannel(mean, c);
  const s = perChannel(std, c);
  const plane = h * w;
  const n = x.length / (plane * c);
  const out = new Uint8Array(x.length);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < plane; i++) {
        const v = Math.round((x[(b * c + ch) * plane + i]! * s[ch]! + m[ch]!) * 255);
        out[(b * plane + i) * c + ch] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return out;
}

/** uint8 NCHW (the built-in datasets' layout) → uint8 NHWC. */
export function nchwToNhwc(pixels: Uint8Array, [c, h, w]: readonly [number, number, number]): Uint8Array {
  const plane = h * w;
  const n = pixels.length / (plane * c);
  const out = new Uint8Array(pixels.length);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < plane; i++) out[(b * plane + i) * c + ch] = pixels[(b * c + ch) * plane + i]!;
    }
  }
  return out;
}
