/**
 * One tile of a large decoded image → the model's input, exactly as plain predict would put a file
 * of the tile's size through the eval transform (Resize(size / crop_pct) → CenterCrop → channels
 * → Normalize). Tiled inference cuts thousands of these between model runs, on the thread that
 * runs the model, so the common case is one pass: a tile of the model's input size with
 * crop_pct 1 is neither resized nor cropped by the transform, and its window of the image is
 * normalised straight into the batch (no intermediate images).
 */
import type { BandImage } from '../data/image/band_decode.js';
import { normalizeRgbWindowWasm } from '../data/kernels/normalize.js';
import { bandsToNormalizedChw, cropBands, evalBands } from '../data/transforms/band_pipeline.js';
import { centerCropBox, evalResizeSize, resizeShorterSide } from '../data/transforms/geometry.js';
import { advance, cropPixels, releasePixels, toGrayscale, toNormalizedChw, type PixelImage } from '../data/transforms/pixels.js';
import { resamplePixels } from '../data/transforms/resample.js';
import type { EvalTransform } from '../data/transforms/transform_config.js';

export interface TileBox { left: number; top: number; width: number; height: number }

/** A decoded image that tiles are cut from: 8-bit pixels (the 8-bit pipeline's arithmetic) or float bands. */
export type TileSource = { kind: 'pixels'; img: PixelImage } | { kind: 'bands'; img: BandImage };

/**
 * Whether the eval transform leaves a tile as it is: the resize of its shorter side to
 * floor(min(H, W) / crop_pct) keeps its size and the centre crop to H × W takes all of it.
 */
export function tileIsModelInput(box: TileBox, t: EvalTransform): boolean {
  const [, h, w] = t.inputSize;
  const [rw, rh] = resizeShorterSide(box.width, box.height, evalResizeSize(h, w, t.cropPct));
  return rw === box.width && rh === box.height && rw === w && rh === h;
}

/** The tile `box` (inside the image) through the eval transform into `out` ([C, H, W] floats). */
export function tileInput(d: TileSource, box: TileBox, t: EvalTransform, label: string, out: Float32Array): void {
  if (d.kind === 'bands') {
    bandsToNormalizedChw(evalBands(cropBands(d.img, box), t, label), t.mean, t.std, out);
    return;
  }
  const [c, h, w] = t.inputSize;
  const img = d.img;
  if (c === 3 && img.channels === 3 && tileIsModelInput(box, t)
    && normalizeRgbWindowWasm(img.data, img.width, box.top, box.left, box.width, box.height, t.mean, t.std, out)) return;
  // the general chain; its intermediate images go back to the pixel pool, so cutting many tiles does not allocate per tile
  const crop = cropPixels(img, box.top, box.left, box.height, box.width);
  const [rw, rh] = resizeShorterSide(box.width, box.height, evalResizeSize(h, w, t.cropPct));
  const resized = advance(crop, resamplePixels(crop, rw, rh, t.interpolation));
  const b = centerCropBox(rh, rw, h, w);
  let px = advance(resized, cropPixels(resized, b.top, b.left, h, w));
  if (c === 1) px = advance(px, toGrayscale(px));
  toNormalizedChw(px, t.mean, t.std, out);
  releasePixels(px);
}

/** Tiles start … start + n − 1 of `boxes` into `out`, one [C, H, W] after another. */
export function cutTiles(d: TileSource, boxes: readonly TileBox[], start: number, n: number, t: EvalTransform, label: string, out: Float32Array): void {
  const per = t.inputSize[0] * t.inputSize[1] * t.inputSize[2];
  for (let i = 0; i < n; i++) tileInput(d, boxes[start + i]!, t, label, out.subarray(i * per, (i + 1) * per));
}
