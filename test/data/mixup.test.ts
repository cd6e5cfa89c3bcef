/** Mixup/CutMix label mass: targets are distributions, weights match the pixels actually mixed, λ ~ Beta(α, α). */
import { describe, expect, it } from 'vitest';
import { Random } from '../../src/random.js';
import { applyMixup, mixupSchema, sampleBeta, type MixupOptions } from '../../src/data/transforms/mixup.js';

const C = 3, H = 20, W = 24, PER = C * H * W;
const opts = (o: Partial<MixupOptions>): MixupOptions => mixupSchema.parse(o);

/** Image i is filled with the value i + 1; labels i mod classes. */
function batch(size: number, classes = 5) {
  const x = new Float32Array(size * PER);
  for (let i = 0; i < size; i++) x.fill(i + 1, i * PER, (i + 1) * PER);
  const labels = Int32Array.from({ length: size }, (_, i) => i % classes);
  return { x, labels, size, shape: [C, H, W] as const, classes, smoothing: 0.1 };
}

const rowSums = (t: Float32Array, size: number, classes: number) => Array.from({ length: size }, (_, i) => t.subarray(i * classes, (i + 1) * classes).reduce((a, b) => a + b, 0));

describe('Mixup / CutMix', () => {
  it('samples Beta(a, b) with the right mean and variance', () => {
    const rng = new Random(1);
    for (const [a, b] of [[0.2, 0.2], [1, 1], [0.8, 0.8], [2.5, 1.5]] as const) {
      const xs = Array.from({ length: 20000 }, () => sampleBeta(a, b, rng));
      const m = xs.reduce((s, v) => s + v, 0) / xs.length;
      const v = xs.reduce((s, x) => s + (x - m) ** 2, 0) / xs.length;
      expect(m).toBeCloseTo(a / (a + b), 2);
      expect(v).toBeCloseTo((a * b) / ((a + b) ** 2 * (a + b + 1)), 2);
      expect(xs.every((x) => x >= 0 && x <= 1)).toBe(true);
    }
  });

  it('Mixup blends each image with its flipped partner by λ and mixes the smoothed targets the same way', () => {
    const b = batch(6);
    const { targets, lam } = applyMixup(b, opts({ mixup: 0.8 }), new Random(2));
    const l = lam[0]!;
    expect(lam.every((v) => v === l)).toBe(true);
    for (let i = 0; i < 6; i++) expect(b.x[i * PER + 17]).toBeCloseTo(l * (i + 1) + (1 - l) * (6 - i), 5);
    const off = 0.1 / 5, on = 1 - 0.1 + off;
    for (let i = 0; i < 6; i++) {
      const expected = new Array(5).fill(off);
      expected[b.labels[i]!] += (on - off) * l;
      expected[b.labels[5 - i]!] += (on - off) * (1 - l);
      Array.from(targets.subarray(i * 5, i * 5 + 5)).forEach((v, k) => expect(v).toBeCloseTo(expected[k], 6));
    }
  });

  it("CutMix's λ is the share of pixels kept, for every mode, and target rows sum to 1", () => {
    for (const mode of ['batch', 'pair', 'elem'] as const) {
      for (let seed = 0; seed < 20; seed++) {
        const b = batch(7);
        const { targets, lam } = applyMixup(b, opts({ cutmix: 1, mixupMode: mode }), new Random(seed));
        rowSums(targets, 7, 5).forEach((s) => expect(s).toBeCloseTo(1, 6));
        for (let i = 0; i < 7; i++) {
          const img = b.x.subarray(i * PER, (i + 1) * PER);
          const own = img.filter((v) => v === i + 1).length / PER;
          const partner = img.filter((v) => v === 7 - i).length / PER;
          if (i === 3) continue; // the middle image of an odd batch is its own partner
          expect(own + partner).toBeCloseTo(1, 9);
          expect(lam[i]).toBeCloseTo(own, 5);
        }
      }
    }
  });

  it('switches between Mixup and CutMix at mixupSwitchProb and mixes at mixupProb', () => {
    let cut = 0, mixed = 0, none = 0;
    const rng = new Random(3);
    for (let k = 0; k < 2000; k++) {
      const b = batch(2, 2);
      applyMixup(b, opts({ mixup: 1, cutmix: 1, mixupProb: 0.6, mixupSwitchProb: 0.25 }), rng);
      const img = b.x.subarray(0, PER);
      if (img.every((v) => v === 1)) none++;
      else if (img.every((v) => v === 1 || v === 2)) cut++;
      else mixed++;
    }
    // P(no mix) = 0.4 (plus CutMix boxes of zero area); P(CutMix | mix) = 0.25
    expect(none / 2000).toBeGreaterThan(0.37);
    expect(none / 2000).toBeLessThan(0.45);
    expect(cut / (cut + mixed)).toBeGreaterThan(0.2);
    expect(cut / (cut + mixed)).toBeLessThan(0.3);
  });

  it('cutmixMinmax draws box sides from [lo, hi) of the image', () => {
    for (let seed = 0; seed < 50; seed++) {
      const b = batch(2, 2);
      const { lam } = applyMixup(b, opts({ cutmixMinmax: [0.2, 0.6] }), new Random(seed));
      const area = 1 - lam[0]!;
      expect(area).toBeGreaterThanOrEqual(Math.trunc(H * 0.2) * Math.trunc(W * 0.2) / (H * W) - 1e-9);
      expect(area).toBeLessThanOrEqual(Math.trunc(H * 0.6) * Math.trunc(W * 0.6) / (H * W) + 1e-9);
    }
  });

  it('rejects bad flags with the flag name', () => {
    expect(() => mixupSchema.parse({ mixupProb: 2 })).toThrow(/mixupProb/);
    expect(() => mixupSchema.parse({ cutmx: 1 })).toThrow(/cutmx/);
  });
});
