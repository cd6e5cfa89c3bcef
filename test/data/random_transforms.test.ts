/**
 * Statistics of the random transforms against the distributions torchvision/timm define:
 * RandomResizedCrop's area and log-aspect, flip rates, RandomErasing's rate and area, ColorJitter
 * factors; and the seeding contract (same (seed, epoch, index) → same pixels).
 */
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { Random, mixSeed } from '../../src/random.js';
import { randomResizedCropBox } from '../../src/data/transforms/geometry.js';
import { trainSample } from '../../src/data/transforms/image_pipeline.js';
import { colorJitter } from '../../src/data/transforms/color_jitter.js';
import { resolveImageTransform } from '../../src/data/transforms/transform_config.js';
import type { PixelImage } from '../../src/data/transforms/pixels.js';

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!;

describe('RandomResizedCrop', () => {
  it('draws area ~ U(scale) and log-aspect ~ U(log ratio) when every draw fits', () => {
    const rng = new Random(1);
    const [h, w] = [400, 400];
    const boxes = Array.from({ length: 20000 }, () => randomResizedCropBox(h, w, { scale: [0.08, 0.5], ratio: [3 / 4, 4 / 3] }, rng));
    const area = boxes.map((b) => (b.width * b.height) / (h * w));
    const logAspect = boxes.map((b) => Math.log(b.width / b.height));
    // U(0.08, 0.5): mean 0.29, quartiles 0.185 / 0.395 (integer rounding of the sides adds < 0.005)
    expect(mean(area)).toBeCloseTo(0.29, 2);
    expect(quantile(area, 0.25)).toBeCloseTo(0.185, 2);
    expect(quantile(area, 0.75)).toBeCloseTo(0.395, 2);
    // U(log 3/4, log 4/3): mean 0, quartiles ±0.144
    expect(Math.abs(mean(logAspect))).toBeLessThan(0.005);
    expect(quantile(logAspect, 0.75)).toBeCloseTo(Math.log(4 / 3) / 2, 2);
    // offsets uniform over the free range
    const rel = boxes.filter((b) => b.height < h).map((b) => b.top / (h - b.height));
    expect(mean(rel)).toBeCloseTo(0.5, 1);
    for (const b of boxes) expect(b.top >= 0 && b.left >= 0 && b.top + b.height <= h && b.left + b.width <= w).toBe(true);
  });

  it('with the ImageNet defaults on a 4:3 photo, keeps crops inside and rejects only what does not fit', () => {
    const rng = new Random(2);
    const boxes = Array.from({ length: 20000 }, () => randomResizedCropBox(375, 500, { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] }, rng));
    const area = boxes.map((b) => (b.width * b.height) / (375 * 500));
    for (const b of boxes) expect(b.top + b.height <= 375 && b.left + b.width <= 500).toBe(true);
    expect(Math.min(...area)).toBeGreaterThanOrEqual(0.079);
    // large areas fit only with aspects near 4:3, so accepted areas skew small: mean < 0.54
    expect(mean(area)).toBeGreaterThan(0.4);
    expect(mean(area)).toBeLessThan(0.54);
  });

  it("falls back to torchvision's centre crop clamped to the ratio range", () => {
    const rng = new Random(3);
    expect(randomResizedCropBox(100, 100, { scale: [0.9, 1], ratio: [2, 3] }, rng)).toEqual({ top: 25, left: 0, height: 50, width: 100 });
    expect(randomResizedCropBox(100, 300, { scale: [0.95, 1], ratio: [0.5, 1] }, rng)).toEqual({ top: 0, left: 100, height: 100, width: 100 });
    expect(randomResizedCropBox(60, 61, { scale: [2, 3], ratio: [0.9, 1.1] }, rng)).toEqual({ top: 0, left: 0, height: 60, width: 61 });
  });
});

/** A 16×16 image whose every pixel is different, so flips are detectable. */
const SIZE = 16;
const pixels = Buffer.from(Array.from({ length: SIZE * SIZE * 3 }, (_, i) => (i * 37) % 256));
const png = await sharp(pixels, { raw: { width: SIZE, height: SIZE, channels: 3 } }).png().toBuffer();
const base = { inputSize: [3, SIZE, SIZE] as const, cropPct: 1, interpolation: 'bilinear' as const, mean: [0], std: [1], scale: [1, 1] as [number, number], ratio: [1, 1] as [number, number], colorJitter: 0 };

describe('flips and erasing through the training transform', () => {
  it('flips horizontally and vertically at their rates', async () => {
    const t = resolveImageTransform({ ...base, hflip: 0.5, vflip: 0.3 });
    const n = 1500;
    let h = 0, v = 0;
    for (let i = 0; i < n; i++) {
      const x = await trainSample(png, t, new Random(mixSeed(11, 0, i)));
      const at = (c: number, y: number, xx: number) => Math.round(x[(c * SIZE + y) * SIZE + xx]! * 255);
      const src = (c: number, y: number, xx: number) => pixels[(y * SIZE + xx) * 3 + c]!;
      const flippedH = at(0, 0, 0) === src(0, 0, SIZE - 1) || at(0, 0, 0) === src(0, SIZE - 1, SIZE - 1);
      const flippedV = at(0, 0, 0) === src(0, SIZE - 1, 0) || at(0, 0, 0) === src(0, SIZE - 1, SIZE - 1);
      h += flippedH ? 1 : 0;
      v += flippedV ? 1 : 0;
    }
    // 4σ bounds: σ = √(p(1 − p)/n)
    expect(Math.abs(h / n - 0.5)).toBeLessThan(4 * Math.sqrt(0.25 / n));
    expect(Math.abs(v / n - 0.3)).toBeLessThan(4 * Math.sqrt(0.21 / n));
  });

  it('erases at rate reprob with areas in [2%, 1/3] of the image', async () => {
    const white = await sharp(Buffer.alloc(64 * 64 * 3, 255), { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
    const t = resolveImageTransform({ ...base, inputSize: [3, 64, 64], hflip: 0, reprob: 0.4, remode: 'const' });
    const n = 1000;
    const areas: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = await trainSample(white, t, new Random(mixSeed(12, 0, i)));
      const erased = x.subarray(0, 64 * 64).filter((v) => v === 0).length / (64 * 64);
      if (erased > 0) areas.push(erased);
    }
    expect(Math.abs(areas.length / n - 0.4)).toBeLessThan(4 * Math.sqrt(0.24 / n));
    expect(Math.min(...areas)).toBeGreaterThanOrEqual(0.015); // 2% before rounding the sides
    expect(Math.max(...areas)).toBeLessThanOrEqual(0.36);
    // area ~ U(0.02, 1/3) (tall/wide draws that do not fit are redrawn): mean ≈ 0.177
    expect(mean(areas)).toBeGreaterThan(0.15);
    expect(mean(areas)).toBeLessThan(0.2);
  });

  it('is a pure function of the seed', async () => {
    const t = resolveImageTransform({ ...base, scale: [0.08, 1], ratio: [3 / 4, 4 / 3], aa: 'rand-m9-mstd0.5-inc1', reprob: 0.5 });
    const a = await trainSample(png, t, new Random(mixSeed(1, 2, 3)));
    expect(await trainSample(png, t, new Random(mixSeed(1, 2, 3)))).toEqual(a);
    expect(await trainSample(png, t, new Random(mixSeed(1, 2, 4)))).not.toEqual(a);
  });
});

describe('ColorJitter', () => {
  it('draws brightness factors uniformly from [1 − b, 1 + b]', () => {
    const gray: PixelImage = { data: new Uint8Array(3 * 4).fill(100), width: 2, height: 2, channels: 3 };
    const rng = new Random(4);
    const out = Array.from({ length: 4000 }, () => colorJitter(gray, { brightness: 0.4, contrast: 0, saturation: 0, hue: 0 }, rng).data[0]!);
    expect(Math.min(...out)).toBeGreaterThanOrEqual(60);
    expect(Math.max(...out)).toBeLessThanOrEqual(140);
    // trunc(100·f), f ~ U(0.6, 1.4): mean 99.5, standard error 23/√4000 ≈ 0.37
    expect(Math.abs(mean(out) - 99.5)).toBeLessThan(4 * 0.37);
    expect(quantile(out, 0.25)).toBeCloseTo(79.5, -1);
  });

  it('is off when RandAugment is on, as in timm', () => {
    expect(resolveImageTransform({ ...base, colorJitter: 0.4 }).colorJitter).toEqual({ brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0 });
    expect(resolveImageTransform({ ...base, colorJitter: 0.4, aa: 'rand-m9' }).colorJitter).toBeUndefined();
    expect(resolveImageTransform({ ...base, colorJitter: [0.1, 0.2, 0.3, 0.05] }).colorJitter).toEqual({ brightness: 0.1, contrast: 0.2, saturation: 0.3, hue: 0.05 });
  });
});
