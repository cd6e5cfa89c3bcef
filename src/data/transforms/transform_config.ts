/**
 * The image transform configuration: the model's preprocessing (input size, mean/std,
 * interpolation, crop_pct) plus timm's training-augmentation flags. One zod schema validates
 * the flags for the CLI, config files and the library; `resolveImageTransform` turns them into
 * the plain, structured-cloneable object the decoding workers receive.
 */
import { z } from 'zod';
import type { ColorJitterStrength } from './color_jitter.js';
import { pythonRound } from './geometry.js';
import { parseRandAugment, type RandAugmentConfig } from './rand_augment.js';

export type Interpolation = 'bilinear' | 'bicubic';

/** What a model's pretrained config says about its input (timm's data config). */
export interface EvalTransform {
  /** [C, H, W] the model expects */
  inputSize: readonly [number, number, number];
  cropPct: number;
  interpolation: Interpolation;
  mean: readonly number[];
  std: readonly number[];
}

const prob = z.number().min(0).max(1);
const range = z.tuple([z.number().positive(), z.number().positive()]);

/** timm train.py's augmentation flags (camelCase), with timm's defaults. */
export const imageAugmentSchema = z.object({
  scale: range.default([0.08, 1]).describe('RandomResizedCrop area fraction range (timm --scale)'),
  ratio: range.default([3 / 4, 4 / 3]).describe('RandomResizedCrop aspect-ratio range, sampled log-uniformly (timm --ratio)'),
  hflip: prob.default(0.5).describe('Probability of a horizontal flip.'),
  vflip: prob.default(0).describe('probability of a vertical flip (timm --vflip)'),
  colorJitter: z.union([z.number().min(0), z.array(z.number().min(0)).min(3).max(4)]).default(0.4)
    .describe('ColorJitter strength: one value for brightness/contrast/saturation, or [b, c, s(, hue)]; unused with --aa (timm --color-jitter)'),
  aa: z.string().optional().describe("RandAugment in timm's syntax, e.g. rand-m9-mstd0.5-inc1 (timm --aa)"),
  reprob: prob.default(0).describe("Random erasing probability (timm's --reprob)."),
  remode: z.enum(['pixel', 'const']).default('pixel').describe("Random erasing fill: per-pixel normal noise or zeros (timm's --remode)."),
  trainInterpolation: z.enum(['random', 'bilinear', 'bicubic']).default('random')
    .describe('resampling of the training crop and RandAugment geometry; random picks bilinear or bicubic per image (timm --train-interpolation)'),
}).strict();

export type ImageAugment = z.infer<typeof imageAugmentSchema>;

/** Model inputs up to this side are "small": a crop of 8% of the area would be a few pixels. */
export const SMALL_INPUT_SIDE = 64;

/**
 * The RandomResizedCrop and colour-jitter defaults for a model input: timm's, made for photos, or
 * for small inputs (28×28 Fashion-MNIST PNGs) no zoom, no aspect change and no jitter, which
 * reached 50.4% held-out top-1 where timm's reached 30.3% (3 epochs on 2.7k images, issue #22).
 */
export function sizeAwareAugment([, h, w]: readonly [number, number, number]): Pick<ImageAugment, 'scale' | 'ratio' | 'colorJitter'> & { small: boolean } {
  const small = Math.max(h, w) <= SMALL_INPUT_SIDE;
  return small ? { small, scale: [1, 1], ratio: [1, 1], colorJitter: 0 } : { small, scale: [0.08, 1], ratio: [3 / 4, 4 / 3], colorJitter: 0.4 };
}
export type ImageAugmentOptions = z.input<typeof imageAugmentSchema>;

/** The model's preprocessing plus (optional) augmentation flags, as createImageLoader takes them. */
export type ImageTransformOptions = EvalTransform & ImageAugmentOptions;

/** Everything a worker needs to transform one sample; plain data. */
export interface ResolvedImageTransform {
  eval: EvalTransform;
  scale: readonly [number, number];
  ratio: readonly [number, number];
  hflip: number;
  vflip: number;
  /** undefined: off (no jitter, or RandAugment is on: timm skips ColorJitter then) */
  colorJitter?: ColorJitterStrength;
  randAugment?: RandAugmentConfig;
  reprob: number;
  remode: 'pixel' | 'const';
  trainInterpolation: 'random' | Interpolation;
  /** RandAugment's fill colour: round(255 · mean), as timm's img_mean */
  fill: number[];
}

/** Validates the options (one clear line per problem, naming the key) and resolves them. */
export function resolveImageTransform(opts: ImageTransformOptions): ResolvedImageTransform {
  const { inputSize, cropPct, interpolation, mean, std, ...augmentKeys } = opts;
  const [c, h, w] = inputSize;
  if (!(Number.isInteger(c) && c > 0) || !(Number.isInteger(h) && h > 0 && Number.isInteger(w) && w > 0)) {
    throw new RangeError(`transform inputSize: expected [C, H, W] with positive integer H and W, got [${inputSize.join(', ')}]`);
  }
  if (!(cropPct > 0 && cropPct <= 1)) throw new RangeError(`transform cropPct: expected a value in (0, 1], got ${cropPct}`);
  if (interpolation !== 'bilinear' && interpolation !== 'bicubic') throw new RangeError(`transform interpolation: expected bilinear or bicubic, got ${String(interpolation)}`);
  for (const [key, v] of [['mean', mean], ['std', std]] as const) {
    if (!(v.length === 1 || v.length === c) || v.some((x) => !Number.isFinite(x))) throw new RangeError(`transform ${key}: expected 1 or ${c} finite numbers, got [${v.join(', ')}]`);
  }
  if (std.some((s) => s <= 0)) throw new RangeError(`transform std: expected positive values, got [${std.join(', ')}]`);
  const parsed = imageAugmentSchema.safeParse(augmentKeys);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : issue.path.join('.');
    throw new RangeError(`transform ${key}: ${issue.message}`);
  }
  const a = parsed.data;
  for (const key of ['scale', 'ratio'] as const) {
    if (a[key][0] > a[key][1]) throw new RangeError(`transform ${key}: expected [min, max] with min ≤ max, got [${a[key].join(', ')}]`);
  }
  const randAugment = a.aa ? parseRandAugment(a.aa) : undefined;
  const cj = typeof a.colorJitter === 'number' ? [a.colorJitter, a.colorJitter, a.colorJitter, 0] : [...a.colorJitter, 0];
  const colorJitter = !randAugment && cj.some((v) => v > 0) ? { brightness: cj[0]!, contrast: cj[1]!, saturation: cj[2]!, hue: cj[3]! } : undefined;
  if (colorJitter && colorJitter.hue > 0.5) throw new RangeError(`transform colorJitter: hue must be in [0, 0.5], got ${colorJitter.hue}`);
  return {
    eval: { inputSize: [c, h, w], cropPct, interpolation, mean: [...mean], std: [...std] },
    scale: a.scale, ratio: a.ratio, hflip: a.hflip, vflip: a.vflip, colorJitter, randAugment, reprob: a.reprob, remode: a.remode,
    trainInterpolation: a.trainInterpolation,
    fill: Array.from({ length: c }, (_, i) => Math.min(255, pythonRound(255 * (mean[i] ?? mean[0]!)))),
  };
}
