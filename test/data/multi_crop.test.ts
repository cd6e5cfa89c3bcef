/**
 * DINO's multi-crop views (src/data/transforms/multi_crop.ts): sizes and count of the global and
 * local views, the seeded stream, the round trip from a loader's normalised tensor back to 8-bit
 * pixels, and the Gaussian blur against its closed form.
 */
import { describe, expect, it } from 'vitest';
import { dinoViews, gaussianBlur, pixelsFromNormalizedChw } from '../../src/data/transforms/multi_crop.js';
import { newPixelImage, toNormalizedChw } from '../../src/data/transforms/pixels.js';
import { Random } from '../../src/random.js';

function testImage(c: number): ReturnType<typeof newPixelImage> {
  const img = newPixelImage(28, 28, c);
  const rng = new Random(4);
  for (let i = 0; i < img.data.length; i++) img.data[i] = rng.int(256);
  return img;
}

describe('DINO multi-crop', () => {
  it('2 global views at the input size and N local views at the local size, the same for the same seed', () => {
    for (const c of [1, 3]) {
      const o = { globalSize: 28, localSize: 12, localCrops: 3, globalScale: [0.4, 1] as const, localScale: [0.05, 0.4] as const, mean: Array(c).fill(0.5), std: Array(c).fill(0.25) };
      const a = dinoViews(testImage(c), o, new Random(1));
      expect(a.globals.map((g) => g.length)).toEqual([c * 28 * 28, c * 28 * 28]);
      expect(a.locals.map((l) => l.length)).toEqual([c * 144, c * 144, c * 144]);
      const b = dinoViews(testImage(c), o, new Random(1));
      expect(b.locals[2]).toEqual(a.locals[2]);
      expect(b.globals[1]).toEqual(a.globals[1]);
      const other = dinoViews(testImage(c), o, new Random(2));
      expect(other.globals[0]).not.toEqual(a.globals[0]);
      // normalised values of 8-bit pixels: within [(0 − 0.5)/0.25, (1 − 0.5)/0.25]
      expect(a.locals.flatMap((l) => [...l]).every((v) => v >= -2 - 1e-6 && v <= 2 + 1e-6)).toBe(true);
    }
  });

  it('a loader tensor goes back to the same 8-bit pixels', () => {
    const img = testImage(3);
    const mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225];
    const back = pixelsFromNormalizedChw(toNormalizedChw(img, mean, std), [3, 28, 28], mean, std);
    expect(back.data).toEqual(img.data);
  });

  it('Gaussian blur: an impulse spreads as the normalised kernel (σ = 1: centre 255 / (Σ e^(−t²/2), |t| ≤ 3)²), flat stays flat', () => {
    const img = newPixelImage(15, 15, 1);
    img.data.fill(0);
    img.data[7 * 15 + 7] = 255;
    const out = gaussianBlur(img, 1);
    const norm = 1 + 2 * (Math.exp(-0.5) + Math.exp(-2) + Math.exp(-4.5));
    expect(out.data[7 * 15 + 7]).toBe(Math.round(255 / norm ** 2));
    expect(out.data[7 * 15 + 8]).toBe(Math.round((255 * Math.exp(-0.5)) / norm ** 2));
    const flat = newPixelImage(9, 9, 3);
    flat.data.fill(77);
    expect(gaussianBlur(flat, 1.7).data.every((v) => v === 77)).toBe(true);
  });
});
