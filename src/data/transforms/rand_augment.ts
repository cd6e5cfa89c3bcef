/**
 * timm's RandAugment (Cubuk et al. 2019, https://arxiv.org/abs/1909.13719) with timm's config
 * string, op set and magnitude semantics (timm/data/auto_augment.py): `rand-m9-n2-mstd0.5-inc1`.
 * Each chosen op runs with probability 0.5 at magnitude m (optionally N(m, mstd) per op call,
 * clipped to [0, mmax]); levels map to op arguments as timm's *_level_to_arg functions do.
 */
import type { Random } from '../../random.js';
import { affineTransform, rotate, type AffineFilter } from './affine.js';
import {
  advance, adjustBrightness, adjustContrast, adjustSaturation, adjustSharpness, autocontrast, equalize, invert, posterize, solarize,
  solarizeAdd, type PixelImage,
} from './pixels.js';

export interface RandAugmentConfig {
  magnitude: number;
  numLayers: number;
  /** N(m, std) per op call; Infinity samples U(0, m) (timm: mstd > 100). */
  magnitudeStd: number;
  magnitudeMax: number;
  /** The 'increasing' op variants (inc1), whose severity grows with the magnitude. */
  increasing: boolean;
  /** timm's weight set 0 (w0) for the op choice, without replacement; undefined: uniform with replacement. */
  weightIndex?: number;
}

const LEVEL_DENOM = 10;

const RAND_TRANSFORMS = [
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'SolarizeAdd', 'Color', 'Contrast', 'Brightness',
  'Sharpness', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel',
] as const;

const RAND_INCREASING_TRANSFORMS = [
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'PosterizeIncreasing', 'SolarizeIncreasing', 'SolarizeAdd', 'ColorIncreasing',
  'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel',
] as const;

export type RandAugmentOpName = (typeof RAND_TRANSFORMS)[number] | (typeof RAND_INCREASING_TRANSFORMS)[number];

// timm's _RAND_CHOICE_WEIGHTS_0, in RAND_TRANSFORMS order
const CHOICE_WEIGHTS_0: Record<string, number> = {
  Rotate: 0.3, ShearX: 0.2, ShearY: 0.2, TranslateXRel: 0.1, TranslateYRel: 0.1, Color: 0.025, Sharpness: 0.025, AutoContrast: 0.025,
  Solarize: 0.005, SolarizeAdd: 0.005, Contrast: 0.005, Brightness: 0.005, Equalize: 0.005, Posterize: 0, Invert: 0,
};

/** Parses timm's RandAugment string ('rand-m9-mstd0.5-inc1'); throws on anything timm would reject. */
export function parseRandAugment(spec: string): RandAugmentConfig {
  const [head, ...sections] = spec.split('-');
  if (head !== 'rand') throw new Error(`auto-augment "${spec}": only RandAugment strings starting with "rand-" are supported (e.g. rand-m9-mstd0.5-inc1)`);
  const cfg: RandAugmentConfig = { magnitude: LEVEL_DENOM, numLayers: 2, magnitudeStd: 0, magnitudeMax: LEVEL_DENOM, increasing: false };
  for (const section of sections) {
    const m = /^([a-z]+)(\d.*)$/.exec(section);
    if (!m) continue; // timm skips sections without a value
    const [, key, raw] = m as unknown as [string, string, string];
    const value = Number(raw);
    if (!Number.isFinite(value)) throw new Error(`auto-augment "${spec}": section "${section}" has a non-numeric value`);
    switch (key) {
      case 'm': cfg.magnitude = Math.trunc(value); break;
      case 'n': cfg.numLayers = Math.trunc(value); break;
      case 'mstd': cfg.magnitudeStd = value > 100 ? Infinity : value; break;
      case 'mmax': cfg.magnitudeMax = Math.trunc(value); break;
      // timm tests bool(val) of the string, so 'inc0' would enable it too; we read the number
      case 'inc': cfg.increasing = value !== 0; break;
      case 'w': cfg.weightIndex = Math.trunc(value); break;
      default: throw new Error(`auto-augment "${spec}": unknown section "${section}" (expected m, n, mstd, mmax, inc, w)`);
    }
  }
  if (cfg.weightIndex !== undefined && cfg.weightIndex !== 0) throw new Error(`auto-augment "${spec}": only weight set w0 exists`);
  return cfg;
}

export interface AugmentContext {
  /** fill colour for pixels moved in from outside: timm uses round(255 · mean) */
  fill: readonly number[];
  /** resampling for the geometric ops; 'random' picks bilinear or bicubic per op, as timm's default */
  interpolation: AffineFilter | 'random';
}

export const randAugmentOps = (cfg: RandAugmentConfig): readonly RandAugmentOpName[] => (cfg.increasing ? RAND_INCREASING_TRANSFORMS : RAND_TRANSFORMS);

/** Applies `numLayers` ops chosen by timm's rules. Consumes `img` (its buffer may be recycled). */
export function randAugment(img: PixelImage, cfg: RandAugmentConfig, ctx: AugmentContext, rng: Random): PixelImage {
  const ops = randAugmentOps(cfg);
  for (const name of chooseOps(ops, cfg, rng)) img = advance(img, applyAugmentOp(img, name, cfg, ctx, rng));
  return img;
}

function chooseOps(ops: readonly RandAugmentOpName[], cfg: RandAugmentConfig, rng: Random): RandAugmentOpName[] {
  if (cfg.weightIndex === undefined) return Array.from({ length: cfg.numLayers }, () => ops[rng.int(ops.length)]!);
  // np.random.choice(replace=False, p=weights): draw one at a time, renormalising the rest
  const pool = RAND_TRANSFORMS.map((name) => ({ name: name as RandAugmentOpName, w: CHOICE_WEIGHTS_0[name]! }));
  const chosen: RandAugmentOpName[] = [];
  for (let i = 0; i < Math.min(cfg.numLayers, pool.filter((p) => p.w > 0).length); i++) {
    const total = pool.reduce((a, p) => a + p.w, 0);
    let u = rng.uniform() * total;
    let pick = -1;
    for (let k = 0; k < pool.length && u >= 0; k++) {
      if (pool[k]!.w <= 0) continue;
      pick = k;
      u -= pool[k]!.w;
    }
    chosen.push(pool[pick]!.name);
    pool[pick]!.w = 0;
  }
  return chosen;
}

/** One timm AugmentOp call: prob 0.5, magnitude noise, level → argument, then the op. */
export function applyAugmentOp(img: PixelImage, name: RandAugmentOpName, cfg: RandAugmentConfig, ctx: AugmentContext, rng: Random): PixelImage {
  if (rng.uniform() > 0.5) return img;
  let magnitude = cfg.magnitude;
  if (cfg.magnitudeStd === Infinity) magnitude = rng.uniform() * magnitude;
  else if (cfg.magnitudeStd > 0) magnitude += rng.normal() * cfg.magnitudeStd;
  magnitude = Math.max(0, Math.min(magnitude, cfg.magnitudeMax || LEVEL_DENOM));
  const level = magnitude / LEVEL_DENOM;
  const negate = (v: number) => (rng.uniform() > 0.5 ? -v : v);
  const filter = (): AffineFilter => (ctx.interpolation === 'random' ? (rng.int(2) === 0 ? 'bilinear' : 'bicubic') : ctx.interpolation);
  const enhance = () => level * 1.8 + 0.1;
  const enhanceIncreasing = () => Math.max(0.1, 1 + negate(level * 0.9));
  switch (name) {
    case 'AutoContrast': return autocontrast(img);
    case 'Equalize': return equalize(img);
    case 'Invert': return invert(img);
    case 'Rotate': { const deg = negate(level * 30); return rotate(img, deg, filter(), ctx.fill); }
    case 'Posterize': return posterize(img, Math.trunc(level * 4));
    case 'PosterizeIncreasing': return posterize(img, 4 - Math.trunc(level * 4));
    case 'Solarize': return solarize(img, Math.trunc(level * 256));
    case 'SolarizeIncreasing': return solarize(img, 256 - Math.trunc(level * 256));
    case 'SolarizeAdd': return solarizeAdd(img, Math.trunc(level * 110));
    case 'Color': return adjustSaturation(img, enhance());
    case 'ColorIncreasing': return adjustSaturation(img, enhanceIncreasing());
    case 'Contrast': return adjustContrast(img, enhance());
    case 'ContrastIncreasing': return adjustContrast(img, enhanceIncreasing());
    case 'Brightness': return adjustBrightness(img, enhance());
    case 'BrightnessIncreasing': return adjustBrightness(img, enhanceIncreasing());
    case 'Sharpness': return adjustSharpness(img, enhance());
    case 'SharpnessIncreasing': return adjustSharpness(img, enhanceIncreasing());
    case 'ShearX': { const s = negate(level * 0.3); return affineTransform(img, [1, s, 0, 0, 1, 0], filter(), ctx.fill); }
    case 'ShearY': { const s = negate(level * 0.3); return affineTransform(img, [1, 0, 0, s, 1, 0], filter(), ctx.fill); }
    case 'TranslateXRel': { const px = negate(level * 0.45) * img.width; return affineTransform(img, [1, 0, px, 0, 1, 0], filter(), ctx.fill); }
    case 'TranslateYRel': { const px = negate(level * 0.45) * img.height; return affineTransform(img, [1, 0, 0, 0, 1, px], filter(), ctx.fill); }
  }
}
