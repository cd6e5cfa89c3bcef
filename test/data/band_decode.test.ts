import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeBands } from '../../src/data/image/band_decode.js';
import { readTiff } from '../../src/data/image/tiff_bands.js';
import { evalSample } from '../../src/data/transforms/image_pipeline.js';
import { resolveImageTransform } from '../../src/data/transforms/transform_config.js';

// made by scripts/make_multispectral_goldens.py (tifffile, PIL 'F'-mode resize, NumPy)
const DIR = join(__dirname, '../fixtures/multispectral');
const golden = JSON.parse(readFileSync(join(DIR, 'goldens.json'), 'utf8')) as {
  files: Record<string, { bits: number; hwc: number[]; first_pixels: number[][]; sum: number }>;
  eval: { file: string; input_size: [number, number, number]; crop_pct: number; interpolation: 'bilinear' | 'bicubic'; mean: number[]; std: number[]; tensor: number[] }[];
};

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('multispectral and 16-bit decoding', () => {
  for (const [file, g] of Object.entries(golden.files)) {
    it(`${file}: every band at its true bit depth`, async () => {
      const img = await decodeBands(join(DIR, file), file);
      const [h, w, c] = g.hwc as [number, number, number];
      expect([img.height, img.width, img.channels, img.bitDepth]).toEqual([h, w, c, g.bits]);
      const scale = g.bits === 8 ? 255 : g.bits === 16 ? 65535 : 1;
      const first = Array.from(img.data.subarray(0, 3 * c), (v) => (scale === 1 ? v : Math.round(v * scale)));
      expect(maxDiff(first, g.first_pixels.flat())).toBeLessThan(scale === 1 ? 1e-7 : 1e-9);
      let sum = 0;
      for (const v of img.data) sum += scale === 1 ? v : Math.round(v * scale);
      expect(Math.abs(sum - g.sum)).toBeLessThan(scale === 1 ? 1e-3 : 0.5);
    }, 15_000);
  }

  for (const e of golden.eval) {
    it(`${e.file}: the eval transform gives NumPy's tensor (${e.input_size.join('×')}, crop_pct ${+e.crop_pct.toFixed(3)}, ${e.interpolation})`, async () => {
      const t = { inputSize: e.input_size, cropPct: e.crop_pct, interpolation: e.interpolation, mean: e.mean, std: e.std };
      const x = await evalSample(join(DIR, e.file), t);
      expect(x.length).toBe(e.tensor.length);
      expect(maxDiff(x, e.tensor)).toBeLessThan(1e-4);
    }, 15_000);
  }

  it('a band count other than the model\'s in_chans is a one-line error naming the file', async () => {
    const t = { inputSize: [3, 16, 16] as const, cropPct: 1, interpolation: 'bilinear' as const, mean: [0.5], std: [0.5] };
    await expect(evalSample(join(DIR, 'b4_u16.tif'), t)).rejects.toThrow(/^.*b4_u16\.tif: has 4 bands, the model expects 3 input channels \(in_chans\)$/);
  });

  it('a 4-channel transform is accepted; a truncated TIFF is a one-line error', () => {
    expect(resolveImageTransform({ inputSize: [4, 16, 16], cropPct: 1, interpolation: 'bilinear', mean: [0.5], std: [0.5], colorJitter: 0 }).eval.inputSize[0]).toBe(4);
    const bytes = readFileSync(join(DIR, 'b4_u16.tif')).subarray(0, 12);
    expect(() => readTiff(bytes, 'cut.tif')).toThrow(/^cut\.tif: /);
  });
});
