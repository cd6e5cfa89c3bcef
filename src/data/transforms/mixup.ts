/**
 * timm's Mixup/CutMix (timm/data/mixup.py) on an assembled batch: Mixup (Zhang et al. 2017)
 * blends each image with its partner in the flipped batch; CutMix (Yun et al. 2019) pastes the
 * partner's box. Soft targets mix the label-smoothed one-hots with the same weight, and with
 * correct_lam the CutMix weight is the pasted box's true area share.
 */
import { z } from 'zod';
import type { Random } from '../../random.js';

const prob = z.number().min(0).max(1);

/** timm train.py's mixup flags (camelCase). */
export const mixupSchema = z.object({
  mixup: z.number().min(0).default(0).describe('Mixup alpha; > 0 enables Mixup (timm --mixup)'),
  cutmix: z.number().min(0).default(0).describe('CutMix alpha; > 0 enables CutMix (timm --cutmix)'),
  cutmixMinmax: z.tuple([z.number().gt(0), z.number().lt(1)]).optional().describe('CutMix box side ratio range; overrides the alpha (timm --cutmix-minmax)'),
  mixupProb: prob.default(1).describe('probability of mixing a batch (or element) (timm --mixup-prob)'),
  mixupSwitchProb: prob.default(0.5).describe('probability of CutMix instead of Mixup when both are on (timm --mixup-switch-prob)'),
  mixupMode: z.enum(['batch', 'pair', 'elem']).default('batch').describe('one mixing weight per batch, per pair or per element (timm --mixup-mode)'),
}).strict();

export type MixupOptions = z.infer<typeof mixupSchema>;
export type MixupOptionsInput = z.input<typeof mixupSchema>;

export const mixupActive = (o: MixupOptions): boolean => o.mixup > 0 || o.cutmix > 0 || o.cutmixMinmax !== undefined;

/** Gamma(shape, 1) by Marsaglia–Tsang (boosted for shape < 1). */
export function sampleGamma(shape: number, rng: Random): number {
  if (shape < 1) return sampleGamma(shape + 1, rng) * Math.pow(1 - rng.uniform(), 1 / shape);
  const d = shape - 1 / 3, c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number, v: number;
    do {
      x = rng.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = 1 - rng.uniform();
    if (Math.log(u) < 0.5 * x * x + d - d * v + d * Math.log(v)) return d * v;
  }
}

export function sampleBeta(a: number, b: number, rng: Random): number {
  const x = sampleGamma(a, rng), y = sampleGamma(b, rng);
  return x + y > 0 ? x / (x + y) : 0.5;
}

export interface Box { yl: number; yh: number; xl: number; xh: number }

/** timm's cutmix_bbox_and_lam: a box of side ratio √(1 − λ) at a random centre (clipped), and the corrected λ. */
export function cutmixBox(h: number, w: number, lam: number, o: MixupOptions, rng: Random): { box: Box; lam: number } {
  let box: Box;
  if (o.cutmixMinmax) {
    const [lo, hi] = o.cutmixMinmax;
    const randint = (a: number, b: number) => a + rng.int(Math.max(1, b - a));
    const ch = randint(Math.trunc(h * lo), Math.trunc(h * hi));
    const cw = randint(Math.trunc(w * lo), Math.trunc(w * hi));
    const yl = rng.int(Math.max(1, h - ch)), xl = rng.int(Math.max(1, w - cw));
    box = { yl, yh: yl + ch, xl, xh: xl + cw };
  } else {
    const ratio = Math.sqrt(1 - lam);
    const ch = Math.trunc(h * ratio), cw = Math.trunc(w * ratio);
    const cy = rng.int(h), cx = rng.int(w);
    const clip = (v: number, n: number) => Math.max(0, Math.min(n, v));
    box = { yl: clip(cy - (ch >> 1), h), yh: clip(cy + (ch >> 1), h), xl: clip(cx - (cw >> 1), w), xh: clip(cx + (cw >> 1), w) };
  }
  // correct_lam (always on with minmax): the weight is what the box actually covers
  return { box, lam: 1 - ((box.yh - box.yl) * (box.xh - box.xl)) / (h * w) };
}

/** One mixing decision: λ and whether it is CutMix (timm's _params_per_batch / per elem). */
function mixParams(o: MixupOptions, rng: Random): { lam: number; cutmix: boolean } {
  if (!(rng.uniform() < o.mixupProb)) return { lam: 1, cutmix: false };
  const cutmixAlpha = o.cutmixMinmax ? 1 : o.cutmix;
  if (o.mixup > 0 && cutmixAlpha > 0) {
    const cutmix = rng.uniform() < o.mixupSwitchProb;
    return { lam: sampleBeta(cutmix ? cutmixAlpha : o.mixup, cutmix ? cutmixAlpha : o.mixup, rng), cutmix };
  }
  if (o.mixup > 0) return { lam: sampleBeta(o.mixup, o.mixup, rng), cutmix: false };
  return { lam: sampleBeta(cutmixAlpha, cutmixAlpha, rng), cutmix: true };
}

export interface MixBatch {
  /** [B, C, H, W], mixed in place */
  x: Float32Array;
  labels: Int32Array;
  size: number;
  shape: readonly [number, number, number];
  classes: number;
  smoothing: number;
}

/**
 * Mixes `b.x` in place and returns the soft targets [B, classes]. Partners are i and B−1−i (the
 * flipped batch); an odd batch's middle image is its own partner.
 */
export function applyMixup(b: MixBatch, o: MixupOptions, rng: Random): { targets: Float32Array; lam: Float32Array } {
  const [c, h, w] = b.shape;
  const per = c * h * w, plane = h * w;
  const B = b.size;
  const orig = b.x.slice(0, B * per);
  const lam = new Float32Array(B).fill(1);
  const paste = (dst: number, src: number, box: Box) => {
    for (let ch = 0; ch < c; ch++) {
      for (let y = box.yl; y < box.yh; y++) {
        const off = ch * plane + y * w;
        b.x.set(orig.subarray(src * per + off + box.xl, src * per + off + box.xh), dst * per + off + box.xl);
      }
    }
  };
  const blend = (dst: number, src: number, l: number) => {
    for (let k = 0; k < per; k++) b.x[dst * per + k] = orig[dst * per + k]! * l + orig[src * per + k]! * (1 - l);
  };
  if (o.mixupMode === 'batch') {
    // one decision (and one CutMix box) for the whole batch
    const p = mixParams(o, rng);
    if (p.lam === 1) return { targets: mixedTargets(b.labels, B, b.classes, b.smoothing, lam), lam };
    if (p.cutmix) {
      const { box, lam: corrected } = cutmixBox(h, w, p.lam, o, rng);
      for (let i = 0; i < B; i++) paste(i, B - 1 - i, box);
      lam.fill(corrected);
    } else {
      for (let i = 0; i < B; i++) blend(i, B - 1 - i, p.lam);
      lam.fill(p.lam);
    }
  } else {
    // 'elem': a decision per image; 'pair': one per (i, B−1−i), applied both ways
    const pairs = o.mixupMode === 'pair';
    for (let i = 0; i < (pairs ? B >> 1 : B); i++) {
      const p = mixParams(o, rng);
      const j = B - 1 - i;
      if (p.lam === 1) continue;
      const targets = pairs ? [i, j] : [i];
      if (p.cutmix) {
        const { box, lam: corrected } = cutmixBox(h, w, p.lam, o, rng);
        for (const t of targets) {
          paste(t, B - 1 - t, box);
          lam[t] = corrected;
        }
      } else {
        for (const t of targets) {
          blend(t, B - 1 - t, p.lam);
          lam[t] = p.lam;
        }
      }
    }
  }
  return { targets: mixedTargets(b.labels, B, b.classes, b.smoothing, lam), lam };
}

/** timm's mixup_target: λ·smooth(y) + (1 − λ)·smooth(y flipped), smooth = (1 − ε)·onehot + ε/K. */
export function mixedTargets(labels: Int32Array, size: number, classes: number, smoothing: number, lam: Float32Array): Float32Array {
  const off = smoothing / classes, on = 1 - smoothing + off;
  const t = new Float32Array(size * classes);
  for (let i = 0; i < size; i++) {
    const l = lam[i]!;
    for (let k = 0; k < classes; k++) t[i * classes + k] = off;
    t[i * classes + labels[i]!]! += (on - off) * l;
    t[i * classes + labels[size - 1 - i]!]! += (on - off) * (1 - l);
  }
  return t;
}
