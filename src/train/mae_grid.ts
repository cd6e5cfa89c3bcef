/**
 * The picture of an MAE epoch: for a few evaluation images, a row of originals, a row with the
 * removed patches greyed out, and a row of reconstructions (the decoder's patches where they were
 * removed, the visible patches as they were — the official demo's "reconstruction + visible").
 * With norm_pix_loss the predictions are per-patch normalised; each is mapped back with its
 * original patch's mean and standard deviation.
 */
import type { PixelImage } from '../data/image/image_overlay.js';

export interface GridInput {
  /** Normalised images [n, C, H, W] as the model saw them. */
  x: Float32Array;
  /** Decoder output [n, N, p·p·C] in patchify's (row, column, channel) order. */
  pred: Float32Array;
  /** [n, N], 1 where a patch was removed. */
  mask: Float32Array;
  n: number;
  shape: readonly [number, number, number];
  patch: number;
  normPix: boolean;
  mean: readonly number[];
  std: readonly number[];
}

export function reconstructionGrid({ x, pred, mask, n, shape: [c, h, w], patch: p, normPix, mean, std }: GridInput): PixelImage {
  const gw = w / p;
  const patches = (h / p) * gw;
  const width = n * w;
  const out = new Float32Array(c * 3 * h * width).fill(0.5);
  const plane = 3 * h * width;
  const put = (row: number, i: number, ch: number, y: number, xx: number, v: number) => {
    out[ch * plane + (row * h + y) * width + i * w + xx] = Math.min(1, Math.max(0, v * std[ch]! + mean[ch]!));
  };
  for (let i = 0; i < n; i++) {
    const img = x.subarray(i * c * h * w, (i + 1) * c * h * w);
    for (let k = 0; k < patches; k++) {
      const [py, px] = [Math.floor(k / gw) * p, (k % gw) * p];
      const removed = mask[i * patches + k] === 1;
      // the original patch's statistics (patchify order), to undo norm_pix_loss
      let m = 0;
      let sq = 0;
      const len = p * p * c;
      for (let a = 0; a < p; a++) for (let b = 0; b < p; b++) for (let ch = 0; ch < c; ch++) m += img[(ch * h + py + a) * w + px + b]!;
      m /= len;
      for (let a = 0; a < p; a++) for (let b = 0; b < p; b++) for (let ch = 0; ch < c; ch++) sq += (img[(ch * h + py + a) * w + px + b]! - m) ** 2;
      const sd = Math.sqrt(sq / (len - 1) + 1e-6);
      for (let a = 0; a < p; a++) {
        for (let b = 0; b < p; b++) {
          for (let ch = 0; ch < c; ch++) {
            const v = img[(ch * h + py + a) * w + px + b]!;
            const q = pred[(i * patches + k) * len + (a * p + b) * c + ch]!;
            put(0, i, ch, py + a, px + b, v);
            if (!removed) put(1, i, ch, py + a, px + b, v);
            put(2, i, ch, py + a, px + b, removed ? (normPix ? q * sd + m : q) : v);
          }
        }
      }
    }
  }
  return { data: out, channels: c, height: 3 * h, width };
}
