/**
 * in_chans of any count for every family, with a pretrained 3-channel input conv adapted as timm's
 * adapt_input_conv does. The weight golden comes from a plain-torch port of timm's function
 * (scripts/make_multispectral_goldens.py, timm aa4b5850); the per-family checks use its linearity:
 * with 1 channel the filters are the sum over RGB, so model1(x) = model3([x, x, x]); with 4 they
 * are [w0, w1, w2, w0]·3/4, so model4([4/3·rgb, 0]) = model3(rgb). Both hold only if the adapted
 * weights land in the family's own input conv.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { adaptInputConv } from '../../src/models/adapt_input.js';
import { compileInference } from '../../src/models/executables.js';
import { getFamily, type ImageModel } from '../../src/models/model.js';
import { createFromConfig } from '../../src/models/registry.js';
import { rng } from '../helpers/random.js';

const golden = JSON.parse(readFileSync(join(__dirname, '../fixtures/multispectral/goldens.json'), 'utf8')).adapt as
  { shape: number[]; weight: number[]; to4: number[]; to1: number[]; to7: number[] };

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

async function logits(model: ImageModel, x: Float32Array): Promise<Float32Array> {
  const exe = await compileInference(model, { threads: 1 });
  try {
    return (await exe.run({ x })).logits!.data as Float32Array;
  } finally {
    await exe.dispose();
  }
}

describe('adapt_input_conv', () => {
  for (const [n, key] of [[4, 'to4'], [1, 'to1'], [7, 'to7']] as const) {
    it(`3 → ${n} channels equals timm's (torch port)`, () => {
      const out = adaptInputConv(Float32Array.from(golden.weight), golden.shape, n);
      expect(out.shape).toEqual([golden.shape[0], n, golden.shape[2], golden.shape[3]]);
      expect(maxDiff(out.data, golden[key])).toBeLessThan(1e-6);
    });
  }
});

describe('in_chans for every family', () => {
  for (const family of ['vit', 'swin', 'convit', 'cvt', 'mobilevit']) {
    it(`${family}: a 4-channel model builds and runs; pretrained RGB weights adapt to 4 and 1 channels as timm's`, async () => {
      const tiny = getFamily(family).tinyArgs!;
      const m3 = createFromConfig(family, { ...tiny, inChans: 3, seed: 3 });
      const [, h, w] = m3.inputShape;
      const plane = h * w, rand = rng(7);
      const rgb = Float32Array.from({ length: 2 * 3 * plane }, () => rand() - 0.5);
      const ref3 = await logits(m3, rgb);

      const m4 = createFromConfig(family, { ...tiny, inChans: 4, seed: 4 });
      expect(m4.inputShape[0]).toBe(4);
      const adapted4 = m4.adaptPretrained(m3.stateDict());
      expect(adapted4.notes.join()).toMatch(/from 3 to 4 input channels/);
      m4.loadStateDict(adapted4.state);
      const x4 = new Float32Array(2 * 4 * plane);
      for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) for (let i = 0; i < plane; i++) x4[(b * 4 + c) * plane + i] = (4 / 3) * rgb[(b * 3 + c) * plane + i]!;
      const out4 = await logits(m4, x4);
      expect(out4.every(Number.isFinite)).toBe(true);
      expect(maxDiff(out4, ref3)).toBeLessThan(1e-4);

      const m1 = createFromConfig(family, { ...tiny, inChans: 1, seed: 1 });
      m1.loadStateDict(m1.adaptPretrained(m3.stateDict()).state);
      const gray = rgb.subarray(0, 2 * plane).slice();
      const x3 = new Float32Array(2 * 3 * plane);
      for (let b = 0; b < 2; b++) for (let c = 0; c < 3; c++) x3.set(gray.subarray(b * plane, (b + 1) * plane), (b * 3 + c) * plane);
      expect(maxDiff(await logits(m1, gray), await logits(m3, x3))).toBeLessThan(1e-4);
    }, 60_000);
  }
});
