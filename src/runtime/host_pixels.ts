/**
 * Pixel layout and normalisation on the host, for running exported models on raw pixels or on
 * normalised floats whichever input the file takes (`onnx_model.ts`), and for checking exports.
 * The in-graph version of the normalisation is `src/export/preprocess.ts`.
 */

/** One value per channel (a single value is shared by all channels, as timm allows). */
export function perChannel(values: readonly number[], channels: number): Float32Array {
  return Float32Array.from({ length: channels }, (_, c) => values[c] ?? values[0]!);
}

/** uint8 NHWC → normalised float NCHW: ((pixels / 255) − mean) / std per channel. */
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
