/**
 * Decoding with sharp (libvips): JPEG, PNG, WebP, GIF (first frame), TIFF, AVIF. EXIF
 * orientation is applied first, so crop boxes refer to the image as it is meant to be seen;
 * alpha is dropped (as PIL's convert('RGB')) and grayscale/CMYK/16-bit inputs become 8-bit sRGB.
 * Cropping runs inside libvips; resizing runs PIL's algorithm on the pixels (resample.ts), except
 * that a JPEG much larger than its target is shrunk by libvips while decoding, so a large photo
 * is never expanded to full size.
 */
import sharp from 'sharp';
import type { CropBox } from '../transforms/geometry.js';
import type { PixelImage } from '../transforms/pixels.js';
import { resamplePixels } from '../transforms/resample.js';
import type { Interpolation } from '../transforms/transform_config.js';
import { oneLine } from '../../quote.js';

export class ImageDecodeError extends Error {
  override name = 'ImageDecodeError';
}

const kernelFor = (i: Interpolation) => (i === 'bicubic' ? sharp.kernel.cubic : sharp.kernel.linear);

type Input = string | Uint8Array;

/**
 * A baseline or progressive JPEG's size and EXIF orientation (from the first EXIF segment, as
 * libvips reads it), read from its markers: the answer libvips would give, without a second pass
 * through it. undefined when the bytes are anything else or the markers are not as expected
 * (sharp then reads the file and reports what is wrong).
 */
export function jpegHeader(b: Uint8Array): { width: number; height: number; orientation: number } | undefined {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return undefined;
  let orientation: number | undefined;
  let at = 2;
  while (at + 4 <= b.length) {
    if (b[at] !== 0xff) return undefined;
    const marker = b[at + 1]!;
    if (marker === 0xff) { at++; continue; } // fill byte
    const length = (b[at + 2]! << 8) | b[at + 3]!;
    const body = at + 4;
    if (length < 2 || body + length - 2 > b.length) return undefined;
    if (marker === 0xe1 && length >= 8 && b[body] === 0x45 && b[body + 1] === 0x78 && b[body + 2] === 0x69 && b[body + 3] === 0x66) {
      orientation ??= exifOrientation(b, body + 6, at + 2 + length) ?? 1;
    }
    // SOF0–SOF15, except DHT (C4), JPG (C8) and DAC (CC)
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (length < 7) return undefined;
      const height = (b[body + 1]! << 8) | b[body + 2]!, width = (b[body + 3]! << 8) | b[body + 4]!;
      return width > 0 && height > 0 ? { width, height, orientation: orientation ?? 1 } : undefined;
    }
    if (marker === 0xda || marker === 0xd9) return undefined; // scan before any frame header
    at = body + length - 2;
  }
  return undefined;
}

/** Tag 0x0112 of IFD0 in the TIFF structure at [start, end), or undefined. */
function exifOrientation(b: Uint8Array, start: number, end: number): number | undefined {
  if (start + 8 > end) return undefined;
  const little = b[start] === 0x49 && b[start + 1] === 0x49;
  if (!little && !(b[start] === 0x4d && b[start + 1] === 0x4d)) return undefined;
  const u16 = (o: number) => (little ? b[o]! | (b[o + 1]! << 8) : (b[o]! << 8) | b[o + 1]!);
  const u32 = (o: number) => (little ? (u16(o) + u16(o + 2) * 65536) : (u16(o) * 65536 + u16(o + 2)));
  const ifd = start + u32(start + 4);
  if (ifd + 2 > end) return undefined;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > end) return undefined;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? v : undefined;
    }
  }
  return undefined;
}

/**
 * The image as a libvips pipeline, with its size as it is meant to be seen (EXIF orientation
 * applied). A JPEG's size and orientation come from its markers, read once; other formats ask
 * libvips.
 */
async function open(input: Input, label: string): Promise<{ img: sharp.Sharp; width: number; height: number }> {
  const jpeg = typeof input === 'string' ? undefined : jpegHeader(input);
  let img: sharp.Sharp;
  try {
    // failOn 'error' rejects truncated files, as PIL does without LOAD_TRUNCATED_IMAGES
    const raw = sharp(input, { failOn: 'error', pages: 1 });
    // rotate() adds a step to the libvips pipeline even when there is nothing to rotate; a JPEG
    // whose markers say orientation 1 skips it (measured: 0.05–0.1 ms of a 1.2 ms decode)
    img = jpeg?.orientation === 1 ? raw : raw.rotate();
  } catch (e) {
    throw new ImageDecodeError(`${label}: not a readable image (${oneLine((e as Error).message)})`);
  }
  // orientations 5–8 swap width and height
  if (jpeg) return jpeg.orientation >= 5 ? { img, width: jpeg.height, height: jpeg.width } : { img, width: jpeg.width, height: jpeg.height };
  let meta: sharp.Metadata;
  try {
    meta = await img.metadata();
  } catch (e) {
    throw new ImageDecodeError(`${label}: not a readable image (${oneLine((e as Error).message)})`);
  }
  if (!meta.width || !meta.height) throw new ImageDecodeError(`${label}: the image has no size`);
  return (meta.orientation ?? 1) >= 5 ? { img, width: meta.height, height: meta.width } : { img, width: meta.width, height: meta.height };
}

async function toPixels(pipeline: sharp.Sharp, label: string): Promise<PixelImage> {
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    out = await pipeline.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw new ImageDecodeError(`${label}: could not decode (${oneLine((e as Error).message)})`);
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
  const { img, width: w, height: h } = await open(input, label);
  const { box, interpolation, flop, flip } = choose(w, h);
  let crop = img.extract({ left: box.left, top: box.top, width: box.width, height: box.height });
  if (flop) crop = crop.flop();
  if (flip) crop = crop.flip();
  return resizeTo(crop, box.width, box.height, outWidth, outHeight, interpolation, label);
}

/**
 * libvips' JPEG shrink-on-load (DCT scaling) pays once the image is this many times the target
 * on both axes; below it the decoded pixels are resampled with PIL's algorithm.
 */
const SHRINK_ON_LOAD = 2;

/**
 * PIL's resampling (resample.ts, bit-exact, on WebAssembly SIMD) on the decoded pixels; only a
 * large shrink runs in libvips, which then decodes the JPEG at a fraction of its size.
 */
async function resizeTo(img: sharp.Sharp, w: number, h: number, outWidth: number, outHeight: number, interpolation: Interpolation, label: string): Promise<PixelImage> {
  if (w === outWidth && h === outHeight) return toPixels(img, label);
  if (w < SHRINK_ON_LOAD * outWidth || h < SHRINK_ON_LOAD * outHeight) {
    const decoded = await toPixels(img, label);
    return resamplePixels(decoded, outWidth, outHeight, interpolation);
  }
  return toPixels(img.resize({ width: outWidth, height: outHeight, fit: 'fill', kernel: kernelFor(interpolation) }), label);
}

/** Decodes `input` and resizes it to `outSize(width, height)` of its oriented size (e.g. torchvision Resize(int)). */
export async function decodeResized(input: Input, outSize: (width: number, height: number) => [number, number], interpolation: Interpolation, label: string): Promise<PixelImage> {
  const { img, width: w, height: h } = await open(input, label);
  const [rw, rh] = outSize(w, h);
  return resizeTo(img, w, h, rw, rh, interpolation, label);
}

/** Decodes `input` at its own size (oriented, 8-bit sRGB). */
export async function decodeFull(input: Input, label = typeof input === 'string' ? input : 'image'): Promise<PixelImage> {
  const { img } = await open(input, label);
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
