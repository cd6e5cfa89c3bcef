/**
 * Decoding image files with sharp and applying a model's eval transform (timm/torchvision):
 * resize the shorter side to floor(size / crop_pct), centre-crop `size`, scale to [0, 1],
 * normalise. EXIF orientation is applied; alpha is dropped and colour converted to the
 * model's channel count (grayscale or sRGB).
 */
import sharp from 'sharp';

export type Interpolation = 'bilinear' | 'bicubic';

export interface EvalTransform {
  /** [C, H, W] the model expects */
  inputSize: readonly [number, number, number];
  cropPct: number;
  interpolation: Interpolation;
  mean: readonly number[];
  std: readonly number[];
}

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

const kernelFor = (i: Interpolation) => (i === 'bicubic' ? sharp.kernel.cubic : sharp.kernel.linear);

/** torchvision Resize(int): the shorter side becomes `size`, the longer keeps the aspect ratio (truncated). */
export function resizeShorterSide(w: number, h: number, size: number): [number, number] {
  return w <= h ? [size, Math.floor((size * h) / w)] : [Math.floor((size * w) / h), size];
}

/** Decodes `input` (a path or bytes) to normalised CHW floats for the model. */
export async function loadImageForModel(input: string | Uint8Array, t: EvalTransform, label = typeof input === 'string' ? input : 'image'): Promise<Float32Array> {
  const [c, h, w] = t.inputSize;
  let oriented: sharp.Sharp;
  let meta: sharp.Metadata;
  try {
    oriented = sharp(input, { failOn: 'error', pages: 1 }).rotate();
    meta = await oriented.metadata();
  } catch (e) {
    throw new ImageDecodeError(`${label}: not a readable image (${(e as Error).message})`);
  }
  // rotate() applies EXIF orientation: 5–8 swap width and height
  const swap = (meta.orientation ?? 1) >= 5;
  const [iw, ih] = swap ? [meta.height!, meta.width!] : [meta.width!, meta.height!];
  const scale = Math.floor(Math.min(h, w) / t.cropPct);
  const [rw, rh] = resizeShorterSide(iw, ih, scale);
  const top = Math.round((rh - h) / 2);
  const left = Math.round((rw - w) / 2);
  let pipeline = oriented.removeAlpha().toColourspace(c === 1 ? 'b-w' : 'srgb');
  pipeline = pipeline.resize({ width: rw, height: rh, fit: 'fill', kernel: kernelFor(t.interpolation) })
    .extract({ left: Math.max(0, left), top: Math.max(0, top), width: Math.min(w, rw), height: Math.min(h, rh) });
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    raw = await pipeline.raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new ImageDecodeError(`${label}: could not decode (${(e as Error).message})`);
  }
  const { data, info } = raw;
  if (info.width !== w || info.height !== h) throw new ImageDecodeError(`${label}: is too small for a ${w}×${h} crop`);
  const out = new Float32Array(c * h * w);
  const srcC = info.channels;
  for (let ch = 0; ch < c; ch++) {
    const m = t.mean[ch] ?? t.mean[0]!;
    const s = t.std[ch] ?? t.std[0]!;
    for (let i = 0; i < h * w; i++) out[ch * h * w + i] = (data[i * srcC + Math.min(ch, srcC - 1)]! / 255 - m) / s;
  }
  return out;
}
