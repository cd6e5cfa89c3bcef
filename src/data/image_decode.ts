/**
 * Decoding with sharp (libvips): JPEG, PNG, WebP, GIF (first frame), TIFF, AVIF. EXIF
 * orientation is applied first, so crop boxes refer to the image as it is meant to be seen;
 * alpha is dropped (as PIL's convert('RGB')) and grayscale/CMYK/16-bit inputs become 8-bit sRGB.
 * Cropping and shrinking run inside libvips (antialiased, as PIL's resize; a JPEG much larger
 * than its target is shrunk while decoding), so a large photo is never expanded to floats.
 */
import sharp from 'sharp';
import type { CropBox } from './geometry.js';
import type { PixelImage } from './pixels.js';
import { resamplePixels } from './resample.js';
import type { Interpolation } from './transform_config.js';

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

const kernelFor = (i: Interpolation) => (i === 'bicubic' ? sharp.kernel.cubic : sharp.kernel.linear);

type Input = string | Uint8Array;

function open(input: Input, label: string): sharp.Sharp {
  try {
    // failOn 'error' rejects truncated files, as PIL does without LOAD_TRUNCATED_IMAGES
    return sharp(input, { failOn: 'error', pages: 1 }).rotate();
  } catch (e) {
    throw new ImageDecodeError(`${label}: not a readable image (${(e as Error).message})`);
  }
}

async function orientedSize(img: sharp.Sharp, label: string): Promise<[number, number]> {
  let meta: sharp.Metadata;
  try {
    meta = await img.metadata();
  } catch (e) {
    throw new ImageDecodeError(`${label}: not a readable image (${(e as Error).message})`);
  }
  if (!meta.width || !meta.height) throw new ImageDecodeError(`${label}: the image has no size`);
  // orientations 5–8 swap width and height
  return (meta.orientation ?? 1) >= 5 ? [meta.height, meta.width] : [meta.width, meta.height];
}

async function toPixels(pipeline: sharp.Sharp, label: string): Promise<PixelImage> {
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    out = await pipeline.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new ImageDecodeError(`${label}: could not decode (${(e as Error).message})`);
  }
  const { data, info } = out;
  if (info.channels !== 3) throw new ImageDecodeError(`${label}: decoded to ${info.channels} channels, expected 3`);
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, channels: 3 };
}

/** What a resized crop takes from the image: the box, the resampling, and optional mirrorings. */
export interface ResizedCropChoice {
  box: CropBox;
  interpolation: Interpolation;
  /** mirror left-right (RandomHorizontalFlip) */
  flop?: boolean;
  /** mirror top-bottom (RandomVerticalFlip) */
  flip?: boolean;
}

/**
 * Decodes `input`, crops the box `choose(width, height)` picks (it sees the oriented size) and
 * resizes the crop to outWidth × outHeight: torchvision's F.resized_crop, as RandomResizedCrop
 * uses it. Mirroring runs in the same libvips pipeline (before the resize; PIL's resampling
 * filters are symmetric, so the result is the mirrored resize, as torchvision flips after it).
 */
export async function decodeResizedCrop(
  input: Input, choose: (width: number, height: number) => ResizedCropChoice, outWidth: number, outHeight: number, label: string,
): Promise<PixelImage> {
  const img = open(input, label);
  const [w, h] = await orientedSize(img, label);
  const { box, interpolation, flop, flip } = choose(w, h);
  let crop = img.extract({ left: box.left, top: box.top, width: box.width, height: box.height });
  if (flop) crop = crop.flop();
  if (flip) crop = crop.flip();
  return resizeTo(crop, box.width, box.height, outWidth, outHeight, interpolation, label);
}

/** Shrinking runs in libvips; enlarging (on either axis) in PIL's algorithm on the decoded pixels. */
async function resizeTo(img: sharp.Sharp, w: number, h: number, outWidth: number, outHeight: number, interpolation: Interpolation, label: string): Promise<PixelImage> {
  if (w === outWidth && h === outHeight) return toPixels(img, label);
  if (outWidth > w || outHeight > h) return resamplePixels(await toPixels(img, label), outWidth, outHeight, interpolation);
  return toPixels(img.resize({ width: outWidth, height: outHeight, fit: 'fill', kernel: kernelFor(interpolation) }), label);
}

/** Decodes `input` and resizes it to `outSize(width, height)` of its oriented size (e.g. torchvision Resize(int)). */
export async function decodeResized(input: Input, outSize: (width: number, height: number) => [number, number], interpolation: Interpolation, label: string): Promise<PixelImage> {
  const img = open(input, label);
  const [w, h] = await orientedSize(img, label);
  const [rw, rh] = outSize(w, h);
  return resizeTo(img, w, h, rw, rh, interpolation, label);
}

/** Decodes `input` at its own size (oriented, 8-bit sRGB). */
export async function decodeFull(input: Input, label = typeof input === 'string' ? input : 'image'): Promise<PixelImage> {
  const img = open(input, label);
  await orientedSize(img, label);
  return toPixels(img, label);
}

/**
 * libvips settings for many small concurrent decodes (process-wide: every thread's sharp shares
 * them): one thread per image, parallelism coming from the images in flight; no operation cache.
 */
export function configureSharpForLoading(): void {
  sharp.concurrency(1);
  sharp.cache(false);
}
