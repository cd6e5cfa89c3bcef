/**
 * Crop and resize geometry with torchvision's exact arithmetic (integer boxes, Python rounding),
 * shared by the sharp decoders, the eval transform and the tests. No pixels here.
 */
import type { Random } from '../../random.js';

/** A crop box in pixels of the (EXIF-oriented) image: top-left corner and size. */
export interface CropBox { top: number; left: number; height: number; width: number }

/** Python's round(): halves go to the even neighbour (torchvision computes crop offsets with it). */
export function pythonRound(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision Resize(int): the shorter side becomes `size`, the longer keeps the aspect ratio (truncated). Returns [w, h]. */
export function resizeShorterSide(w: number, h: number, size: number): [number, number] {
  return w <= h ? [size, Math.floor((size * h) / w)] : [Math.floor((size * w) / h), size];
}

/** timm's eval resize: the shorter side becomes floor(size / crop_pct) before the centre crop. */
export function evalResizeSize(inputHeight: number, inputWidth: number, cropPct: number): number {
  return Math.floor(Math.min(inputHeight, inputWidth) / cropPct);
}

/**
 * torchvision CenterCrop's box: top = round((h − th) / 2) with Python rounding. When the crop is
 * larger than the image the offsets are negative: torchvision zero-pads, and so does `centerCropPixels`.
 */
export function centerCropBox(h: number, w: number, th: number, tw: number): CropBox {
  // torchvision pads floor(excess / 2) before the crop, then crops at offset 0 on that axis
  const offset = (size: number, crop: number) => (crop > size ? -Math.floor((crop - size) / 2) : pythonRound((size - crop) / 2));
  return { top: offset(h, th), left: offset(w, tw), height: th, width: tw };
}

export interface RandomResizedCropParams {
  /** Area fraction range, torchvision default [0.08, 1]. */
  scale: readonly [number, number];
  /** Aspect (w/h) range, sampled log-uniformly; default [3/4, 4/3]. */
  ratio: readonly [number, number];
}

/**
 * torchvision RandomResizedCrop.get_params: ten tries of (area, log-uniform aspect), then the
 * fallback centre crop clamped to the ratio range. `h`, `w` are the image's size.
 */
export function randomResizedCropBox(h: number, w: number, p: RandomResizedCropParams, rng: Random): CropBox {
  const area = h * w;
  const logRatio = [Math.log(p.ratio[0]), Math.log(p.ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * (p.scale[0] + rng.uniform() * (p.scale[1] - p.scale[0]));
    const aspect = Math.exp(logRatio[0] + rng.uniform() * (logRatio[1] - logRatio[0]));
    const cw = pythonRound(Math.sqrt(targetArea * aspect));
    const ch = pythonRound(Math.sqrt(targetArea / aspect));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      const top = rng.int(h - ch + 1);
      const left = rng.int(w - cw + 1);
      return { top, left, height: ch, width: cw };
    }
  }
  const inRatio = w / h;
  const [lo, hi] = [Math.min(p.ratio[0], p.ratio[1]), Math.max(p.ratio[0], p.ratio[1])];
  let [cw, ch] = [w, h];
  if (inRatio < lo) ch = pythonRound(cw / lo);
  else if (inRatio > hi) cw = pythonRound(ch * hi);
  return { top: Math.floor((h - ch) / 2), left: Math.floor((w - cw) / 2), height: ch, width: cw };
}
