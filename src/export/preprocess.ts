/**
 * Preprocessing that can travel inside an exported graph (`tessera export --preprocess`): raw
 * pixels uint8 [B, H, W, C] → normalised float [B, C, H, W], traced with the engine's own ops.
 * Resizing and cropping stay outside: they depend on the source image's size. The same on the
 * host is `src/runtime/host_pixels.ts` (re-exported here).
 */
import type { Tensor } from '../ir/tensor.js';
import { cast, div, sub, transpose } from '../ops/index.js';
import { perChannel } from '../runtime/host_pixels.js';

export { perChannel, normalizePixelsOnHost, pixelsFromNormalized, nchwToNhwc } from '../runtime/host_pixels.js';

/** ((pixels / 255) − mean) / std over the channel axis, then NHWC → NCHW. */
export function normalizePixels(pixels: Tensor, mean: readonly number[], std: readonly number[]): Tensor {
  const c = pixels.shape[3] as number;
  const g = pixels.graph;
  const m = g.constant(perChannel(mean, c), [c], 'float32');
  const s = g.constant(perChannel(std, c), [c], 'float32');
  const x = div(sub(div(cast(pixels, 'float32'), 255), m), s); // [B, H, W, C], channels broadcast last
  return transpose(x, [0, 3, 1, 2]); // [B, C, H, W]
}
