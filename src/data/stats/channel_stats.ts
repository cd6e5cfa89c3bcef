/**
 * Per-channel mean and standard deviation of a dataset's images, as users compute them for
 * Normalize on non-ImageNet data: every pixel of every image at its own size, samples in [0, 1]
 * by their true bit depth (band_decode.ts), population std (NumPy's ddof=0). Images are visited
 * one at a time; each image's sums are taken in float64 and merged with Chan et al.'s pairwise
 * update, so a large dataset neither needs memory nor loses precision.
 */
import { decodeBands, isPng, type BandImage } from '../image/band_decode.js';
import { decodeFull } from '../image/image_decode.js';
import { isTiff } from '../image/tiff_bands.js';
import { readFile } from 'node:fs/promises';

export interface ChannelStats {
  channels: number;
  mean: number[];
  std: number[];
  /** pixels counted per channel */
  pixels: number;
  images: number;
}

/** The image as [0, 1] samples: PNG/TIFF through the band decoder (any depth), other formats as 8-bit sRGB. */
async function samplesOf(path: string): Promise<BandImage> {
  const bytes = await readFile(path);
  if (isPng(bytes) || isTiff(bytes)) return decodeBands(bytes, path);
  const px = await decodeFull(bytes, path);
  return { data: Float32Array.from(px.data, (v) => v / 255), width: px.width, height: px.height, channels: px.channels, bitDepth: 8 };
}

/** Streams `paths`, calling `progress(done, total)` after each image; every image must have the first one's channel count. */
export async function channelStats(paths: readonly string[], progress?: (done: number, total: number) => void): Promise<ChannelStats> {
  if (paths.length === 0) throw new RangeError('channel statistics need at least one image');
  let channels = 0, n = 0;
  let mean: Float64Array = new Float64Array(0), m2: Float64Array = new Float64Array(0);
  for (let i = 0; i < paths.length; i++) {
    const img = await samplesOf(paths[i]!);
    if (i === 0) {
      channels = img.channels;
      mean = new Float64Array(channels);
      m2 = new Float64Array(channels);
    } else if (img.channels !== channels) {
      throw new RangeError(`${paths[i]}: has ${img.channels} channels, the dataset's first image ${paths[0]} has ${channels}`);
    }
    const count = img.width * img.height;
    for (let c = 0; c < channels; c++) {
      let s = 0;
      for (let p = 0; p < count; p++) s += img.data[p * channels + c]!;
      const m = s / count;
      let q = 0;
      for (let p = 0; p < count; p++) { const d = img.data[p * channels + c]! - m; q += d * d; }
      // Chan et al.: merge (n, mean, m2) with this image's (count, m, q)
      const delta = m - mean[c]!, total = n + count;
      mean[c] = mean[c]! + (delta * count) / total;
      m2[c] = m2[c]! + q + (delta * delta * n * count) / total;
    }
    n += count;
    progress?.(i + 1, paths.length);
  }
  return { channels, mean: [...mean], std: [...m2].map((v) => Math.sqrt(v / n)), pixels: n, images: paths.length };
}
