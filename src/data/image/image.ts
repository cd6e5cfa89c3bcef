/**
 * Decoding image files with sharp and applying a model's eval transform (timm/torchvision):
 * resize the shorter side to floor(size / crop_pct), centre-crop `size`, scale to [0, 1],
 * normalise. EXIF orientation is applied; alpha is dropped and colour converted to the
 * model's channel count (PIL's grayscale weights, or sRGB). The image-folder loader runs the
 * same eval transform (image_pipeline.ts), so predict, eval and training agree pixel for pixel.
 */
import { evalSample } from '../transforms/image_pipeline.js';
import type { EvalTransform } from '../transforms/transform_config.js';

export { ImageDecodeError } from './image_decode.js';
export { resizeShorterSide } from '../transforms/geometry.js';
export type { EvalTransform, Interpolation } from '../transforms/transform_config.js';

/** Decodes `input` (a path or bytes) to normalised CHW floats for the model. */
export async function loadImageForModel(input: string | Uint8Array, t: EvalTransform, label = typeof input === 'string' ? input : 'image'): Promise<Float32Array> {
  return evalSample(input, t, label);
}
