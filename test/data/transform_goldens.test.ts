/**
 * Deterministic transforms against torchvision 0.14 + PIL 9.4 goldens
 * (scripts/make_transform_goldens.py → test/fixtures/transforms/cases.json).
 *
 * Resizes run PIL's own algorithm (resample.ts) and are bit-exact, except shrinks by 2× or more,
 * which libvips (sharp) does while decoding and resamples slightly differently from PIL; their
 * bound is the mean absolute difference ≤ 1/255. Measured on these fixtures (8-bit
 * levels) for libvips shrinks: mean 0.06–0.22, max 2 (bicubic ≈ 0.08–0.16, bilinear ≈ 0.12–0.22).
 * Crops, flips, grayscale, the RandAugment point ops, the ImageEnhance blends and PIL's affine
 * filters are bit-exact; hue differs by ≤ 3 levels on a few pixels (PIL computes HSV in float32).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeFull, decodeResized, decodeResizedCrop } from '../../src/data/image/image_decode.js';
import { evalPixels } from '../../src/data/transforms/image_pipeline.js';
import { centerCropBox, resizeShorterSide } from '../../src/data/transforms/geometry.js';
import {
  adjustBrightness, adjustContrast, adjustHue, adjustSaturation, adjustSharpness, autocontrast, cropPixels, equalize, flipHorizontal,
  flipVertical, invert, posterize, solarize, solarizeAdd, toGrayscale, toNormalizedChw, type PixelImage,
} from '../../src/data/transforms/pixels.js';
import { affineTransform, rotate, type AffineFilter } from '../../src/data/transforms/affine.js';
import type { Interpolation } from '../../src/data/transforms/transform_config.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'transforms');
interface Case { name: string; input: string; op: string; params: Record<string, any>; expected?: string; values?: number[] }
const meta = JSON.parse(readFileSync(join(DIR, 'cases.json'), 'utf8')) as { cases: Case[] };

async function load(file: string, channels: number): Promise<PixelImage> {
  const img = await decodeFull(join(DIR, file));
  return channels === 1 ? toGrayscale(img) : img;
}

async function run(c: Case, channels: number): Promise<PixelImage> {
  const path = join(DIR, c.input);
  const p = c.params;
  const gray = (img: PixelImage) => (channels === 1 ? toGrayscale(img) : img);
  switch (c.op) {
    case 'resize': return gray(await decodeResized(path, (w, h) => resizeShorterSide(w, h, p.size), p.interpolation as Interpolation, c.name));
    case 'center_crop': {
      const img = await load(c.input, channels);
      const box = centerCropBox(img.height, img.width, p.height, p.width);
      return cropPixels(img, box.top, box.left, p.height, p.width);
    }
    case 'eval': return evalPixels(path, { inputSize: [channels, p.size, p.size], cropPct: p.crop_pct, interpolation: p.interpolation, mean: [0], std: [1] });
    case 'resized_crop': return gray(await decodeResizedCrop(path, () => ({ box: p as any, interpolation: p.interpolation }), p.size, p.size, c.name));
    case 'hflip': return flipHorizontal(await load(c.input, channels));
    case 'vflip': return flipVertical(await load(c.input, channels));
    case 'grayscale': return toGrayscale(await load(c.input, 3));
  }
  const img = await load(c.input, channels);
  const filter = p.interpolation as AffineFilter;
  switch (c.op) {
    case 'auto_contrast': return autocontrast(img);
    case 'equalize': return equalize(img);
    case 'invert': return invert(img);
    case 'posterize': return posterize(img, p.bits);
    case 'solarize': return solarize(img, p.threshold);
    case 'solarize_add': return solarizeAdd(img, p.add);
    case 'color': return adjustSaturation(img, p.factor);
    case 'contrast': return adjustContrast(img, p.factor);
    case 'brightness': return adjustBrightness(img, p.factor);
    case 'sharpness': return adjustSharpness(img, p.factor);
    case 'hue': return adjustHue(img, p.factor);
    case 'rotate': return rotate(img, p.degrees, filter, p.fill);
    case 'shear_x': return affineTransform(img, [1, p.factor, 0, 0, 1, 0], filter, p.fill);
    case 'shear_y': return affineTransform(img, [1, 0, 0, p.factor, 1, 0], filter, p.fill);
    case 'translate_x_rel': return affineTransform(img, [1, 0, p.pct * img.width, 0, 1, 0], filter, p.fill);
    case 'translate_y_rel': return affineTransform(img, [1, 0, 0, 0, 1, p.pct * img.height], filter, p.fill);
  }
  throw new Error(`unknown op ${c.op}`);
}

function diff(a: PixelImage, b: PixelImage): { mean: number; max: number } {
  expect([a.width, a.height, a.channels]).toEqual([b.width, b.height, b.channels]);
  let sum = 0, max = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(a.data[i]! - b.data[i]!);
    sum += d;
    max = Math.max(max, d);
  }
  return { mean: sum / a.data.length, max };
}

const RESAMPLED = new Set(['resize', 'eval', 'resized_crop']);
const channelsOf = (c: Case) => (c.input === 'gray.png' || c.op === 'grayscale' ? 1 : 3);

describe('transform goldens (torchvision 0.14 + PIL)', () => {
  const imageCases = meta.cases.filter((c) => c.expected);

  it.each(imageCases.map((c) => [c.name, c] as const))('%s', async (_, c) => {
    const expected = await load(c.expected!, channelsOf(c));
    const d = diff(await run(c, channelsOf(c)), expected);
    if (RESAMPLED.has(c.op)) {
      const source = await load(c.input, channelsOf(c));
      const region = c.op === 'resized_crop' ? Math.min(c.params.height, c.params.width) : Math.min(source.height, source.width);
      // below libvips' shrink-on-load factor (2) the resize runs PIL's algorithm: exact
      const exact = region < 2 * Math.min(expected.width, expected.height);
      expect(d.mean, exact ? 'PIL resampling' : 'libvips shrink').toBeLessThanOrEqual(exact ? 0 : 0.25);
      expect(d.max).toBeLessThanOrEqual(2);
    } else if (c.op === 'hue') {
      expect(d.mean).toBeLessThan(0.01);
      expect(d.max).toBeLessThanOrEqual(3);
    } else expect(d).toEqual({ mean: 0, max: 0 });
  });

  it('ToTensor + Normalize matches torchvision to float precision', async () => {
    const c = meta.cases.find((x) => x.op === 'normalize')!;
    const p = c.params;
    const img = await load(c.input, 3);
    const got = toNormalizedChw(cropPixels(img, p.top, p.left, p.height, p.width), p.mean, p.std);
    expect(got.length).toBe(c.values!.length);
    got.forEach((v, i) => expect(v).toBeCloseTo(c.values![i]!, 5));
  });

  it('covers every deterministic transform the issue lists', () => {
    const ops = new Set(meta.cases.map((c) => c.op));
    for (const op of ['resize', 'center_crop', 'eval', 'hflip', 'vflip', 'normalize', 'resized_crop']) expect(ops.has(op), op).toBe(true);
    const interps = new Set(meta.cases.filter((c) => c.op === 'resize').map((c) => c.params.interpolation));
    expect([...interps].sort()).toEqual(['bicubic', 'bilinear']);
  });
});
