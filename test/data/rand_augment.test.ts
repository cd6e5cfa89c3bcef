/** RandAugment: timm's config strings, op sets, magnitude-to-argument mapping and op choice. */
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/random.js';
import { applyAugmentOp, parseRandAugment, randAugment, randAugmentOps, type AugmentContext } from '../../src/data/transforms/rand_augment.js';
import { invert, posterize, solarize, type PixelImage } from '../../src/data/transforms/pixels.js';
import { rotate } from '../../src/data/transforms/affine.js';

const img: PixelImage = { data: Uint8Array.from({ length: 12 * 10 * 3 }, (_, i) => (i * 53) % 256), width: 12, height: 10, channels: 3 };
const ctx: AugmentContext = { fill: [124, 116, 104], interpolation: 'bilinear' };
const same = (a: PixelImage, b: PixelImage) => a.data.every((v, i) => v === b.data[i]);

describe('RandAugment', () => {
  it("parses timm's strings", () => {
    expect(parseRandAugment('rand-m9-mstd0.5-inc1')).toEqual({ magnitude: 9, numLayers: 2, magnitudeStd: 0.5, magnitudeMax: 10, increasing: true });
    expect(parseRandAugment('rand-m7-n3-mstd101-mmax15-w0')).toEqual({ magnitude: 7, numLayers: 3, magnitudeStd: Infinity, magnitudeMax: 15, increasing: false, weightIndex: 0 });
    expect(parseRandAugment('rand')).toEqual({ magnitude: 10, numLayers: 2, magnitudeStd: 0, magnitudeMax: 10, increasing: false });
    expect(() => parseRandAugment('v0-mstd0.5')).toThrow(/only RandAugment strings starting with "rand-"/);
    expect(() => parseRandAugment('rand-m9-x3')).toThrow(/unknown section "x3"/);
    expect(randAugmentOps(parseRandAugment('rand-m9-inc1'))).toContain('PosterizeIncreasing');
    expect(randAugmentOps(parseRandAugment('rand-m9'))).toHaveLength(15);
  });

  it('maps magnitudes to op arguments as timm does, applying each op with probability 0.5', () => {
    const cfg = parseRandAugment('rand-m9');
    const outcomes = (name: Parameters<typeof applyAugmentOp>[1], c = cfg) => {
      const rng = new Random(5);
      return Array.from({ length: 400 }, () => applyAugmentOp(img, name, c, ctx, rng));
    };
    // Posterize m9: int(0.9 · 4) = 3 bits; PosterizeIncreasing: 4 − 3 = 1 bit
    const post = outcomes('Posterize');
    expect(post.every((o) => same(o, img) || same(o, posterize(img, 3)))).toBe(true);
    const applied = post.filter((o) => !same(o, img)).length / post.length;
    expect(applied).toBeGreaterThan(0.4);
    expect(applied).toBeLessThan(0.6);
    expect(outcomes('PosterizeIncreasing').every((o) => same(o, img) || same(o, posterize(img, 1)))).toBe(true);
    // Solarize m9: threshold int(0.9 · 256) = 230; SolarizeIncreasing m10: 0 (full inversion)
    expect(outcomes('Solarize').every((o) => same(o, img) || same(o, solarize(img, 230)))).toBe(true);
    expect(outcomes('SolarizeIncreasing', parseRandAugment('rand-m10-inc1')).every((o) => same(o, img) || same(o, invert(img)))).toBe(true);
    // Rotate m9: ±27°, each sign half the time
    const rot = outcomes('Rotate');
    const plus = rot.filter((o) => same(o, rotate(img, 27, 'bilinear', ctx.fill))).length;
    const minus = rot.filter((o) => same(o, rotate(img, -27, 'bilinear', ctx.fill))).length;
    expect(plus + minus + rot.filter((o) => same(o, img)).length).toBe(400);
    expect(Math.abs(plus - minus)).toBeLessThan(60);
    // Brightness at m5 has factor 1.0: a no-op
    expect(outcomes('Brightness', parseRandAugment('rand-m5')).every((o) => same(o, img))).toBe(true);
  });

  it('draws magnitudes from N(m, mstd) clipped to [0, mmax], or U(0, m) with mstd > 100', () => {
    const thresholds = (spec: string) => {
      const cfg = parseRandAugment(spec);
      const rng = new Random(6);
      const out: number[] = [];
      for (let k = 0; out.length < 600 && k < 5000; k++) {
        const o = applyAugmentOp(img, 'Solarize', cfg, ctx, rng);
        if (same(o, img)) continue;
        // the threshold is at most the smallest inverted value and above the largest kept one
        let t = 256;
        img.data.forEach((v, i) => { if (o.data[i] !== v) t = Math.min(t, v); });
        out.push(t);
      }
      return out;
    };
    const normal = thresholds('rand-m5-mstd1');
    const m = normal.reduce((a, b) => a + b, 0) / normal.length;
    expect(m / 256 * 10).toBeGreaterThan(4.7);
    expect(m / 256 * 10).toBeLessThan(5.3);
    const uniform = thresholds('rand-m10-mstd200');
    expect(Math.min(...uniform)).toBeLessThan(40);
    expect(Math.max(...uniform)).toBeGreaterThan(210);
  });

  it("w0 picks distinct ops by timm's weights (never Posterize or Invert)", () => {
    const cfg = parseRandAugment('rand-m9-n3-w0');
    const rng = new Random(7);
    // with the prob-0.5 gate out of the way, count which ops change a probe image
    let changedByInvert = 0;
    for (let k = 0; k < 300; k++) {
      const out = randAugment(img, cfg, ctx, rng);
      if (same(out, invert(img))) changedByInvert++;
    }
    expect(changedByInvert).toBe(0);
  });
});
