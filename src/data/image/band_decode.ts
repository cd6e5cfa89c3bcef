/**
 * Decoding images that the 8-bit pipeline would lose bits or bands of: 16-bit PNG (libvips, in
 * its own 16-bit colourspace so no sRGB conversion touches the samples) and N-band TIFF
 * (tiff_bands.ts). Samples become float32 in [0, 1] by their true bit depth (v / 255, v / 65535;
 * float TIFFs are kept as stored). Alpha is dropped from PNGs (PIL's convert drops it too); every
 * TIFF sample is a band (a multispectral raster's fourth band is not transparency).
 */
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { ImageDecodeError } from './image_decode.js';
import { TiffError, isTiff, readTiff } from './tiff_bands.js';
import { oneLine } from '../../quote.js';

/** A decoded image of any band count: float32 HWC samples in [0, 1]. */
export interface BandImage {
  data: Float32Array;
  width: number;
  height: number;
  channels: number;
  /** the file's bits per sample (8, 16, or 32 for float) */
  bitDepth: number;
}

type Input = string | Uint8Array;

export const isPng = (b: Uint8Array): boolean => b.length > 24 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47;

const bytesOf = async (input: Input, label: string): Promise<Uint8Array> => {
  if (typeof input !== 'string') return input;
  try {
    return await readFile(input);
  } catch (e) {
    throw new ImageDecodeError(`${label}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
};

/**
 * The band image when the file needs the band path for a model of `channels` input channels:
 * a TIFF or PNG of more than 8 bits, or any TIFF whose band count is not 1 or 3, or any model of
 * other than 1 or 3 channels. Otherwise the file's bytes, which the 8-bit pipeline reads exactly
 * (so a file on disk is read once, not once to look at and again to decode).
 */
export async function decodeBandsIfNeeded(input: Input, channels: number, label: string): Promise<BandImage | Uint8Array> {
  const bytes = await bytesOf(input, label);
  return (await bandsOf(bytes, channels, label)) ?? bytes;
}

async function bandsOf(bytes: Uint8Array, channels: number, label: string): Promise<BandImage | undefined> {
  const plain = channels === 1 || channels === 3;
  if (isPng(bytes)) {
    // IHDR's bit depth is byte 24
    if (plain && bytes[24]! <= 8) return undefined;
    return decodePng(bytes, label);
  }
  if (isTiff(bytes)) {
    let r;
    try {
      r = readTiff(bytes, label);
    } catch (e) {
      // a compression this reader lacks (JPEG, LZW): libvips reads it, as an 8-bit 1/3-band image
      if (e instanceof TiffError && plain && /compression|predictor/.test(e.message)) return undefined;
      throw new ImageDecodeError(e instanceof TiffError ? e.message : `${label}: not a readable TIFF (${oneLine((e as Error).message)})`);
    }
    if (plain && r.bitsPerSample === 8 && (r.bands === 1 || r.bands === 3)) return undefined;
    const scale = r.bitsPerSample === 8 ? 255 : r.bitsPerSample === 16 ? 65535 : 1;
    const data = new Float32Array(r.data.length);
    for (let i = 0; i < data.length; i++) data[i] = r.data[i]! / scale;
    return { data, width: r.width, height: r.height, channels: r.bands, bitDepth: r.bitsPerSample };
  }
  if (plain) return undefined;
  throw new ImageDecodeError(`${label}: a ${channels}-channel model reads multiband TIFF or PNG files, not this format`);
}

/** Decodes `input` as a band image whatever its depth (the band count of an 8-bit image included). */
export async function decodeBands(input: Input, label: string): Promise<BandImage> {
  const bytes = await bytesOf(input, label);
  // a channel count of 0 is neither 1 nor 3: every PNG and TIFF is decoded, any other format refused
  return (await bandsOf(bytes, 0, label))!;
}

async function decodePng(bytes: Uint8Array, label: string): Promise<BandImage> {
  try {
    const img = sharp(bytes, { failOn: 'error' });
    const meta = await img.metadata();
    const sixteen = meta.depth === 'ushort';
    // toColourspace(its own space) keeps libvips from converting to 8-bit sRGB on output
    let pipeline = img.toColourspace(meta.space ?? (sixteen ? 'grey16' : 'b-w'));
    if (meta.hasAlpha) pipeline = pipeline.removeAlpha();
    const { data, info } = await pipeline.raw({ depth: sixteen ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
    const samples = sixteen ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2) : data;
    const scale = sixteen ? 65535 : 255;
    const out = new Float32Array(samples.length);
    for (let i = 0; i < out.length; i++) out[i] = samples[i]! / scale;
    return { data: out, width: info.width, height: info.height, channels: info.channels, bitDepth: sixteen ? 16 : 8 };
  } catch (e) {
    throw new ImageDecodeError(`${label}: not a readable image (${oneLine((e as Error).message)})`);
  }
}
