/**
 * Swin's window helpers: the cyclic shift, window partition / reverse as reshapes and transposes,
 * and the constant tables of window attention (relative-position index, shifted-window mask).
 */
import type { Tensor } from '../ir/tensor.js';
import { concat, reshape, slice, transpose } from '../ops/index.js';

/** torch.roll along one axis: out[i] = x[(i − shift) mod n]. */
export function roll(x: Tensor, shift: number, axis: number): Tensor {
  const n = x.shape[axis] as number;
  const s = ((shift % n) + n) % n;
  if (s === 0) return x;
  return concat([slice(x, [axis], [n - s], [n]), slice(x, [axis], [0], [n - s])], axis);
}

/** [B, H, W, C] → [B·nW, w·w, C], windows in row-major order (timm's window_partition). */
export function windowPartition(x: Tensor, w: number): Tensor {
  const [, h, wd, c] = x.shape as [unknown, number, number, number];
  const windows = transpose(reshape(x, [-1, h / w, w, wd / w, w, c]), [0, 1, 3, 2, 4, 5]); // [B, H/w, W/w, w, w, C]
  return reshape(windows, [-1, w * w, c]);
}

/** The inverse of windowPartition: [B·nW, w·w, C] → [B, H, W, C]. */
export function windowReverse(windows: Tensor, w: number, h: number, wd: number): Tensor {
  const c = windows.shape[2] as number;
  const x = transpose(reshape(windows, [-1, h / w, wd / w, w, w, c]), [0, 1, 3, 2, 4, 5]); // [B, H/w, w, W/w, w, C]
  return reshape(x, [-1, h, wd, c]);
}

/** timm's get_relative_position_index: for each (query, key) pair of a w×w window, its row in the bias table. */
export function relativePositionIndex(w: number): BigInt64Array {
  const n = w * w;
  const out = new BigInt64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const dy = Math.floor(i / w) - Math.floor(j / w) + w - 1;
      const dx = (i % w) - (j % w) + w - 1;
      out[i * n + j] = BigInt(dy * (2 * w - 1) + dx);
    }
  }
  return out;
}

/**
 * The shifted-window mask [nW, N, N] of a (padded) hp×wp map: 0 within a region, −100 across
 * the 3×3 regions the cyclic shift brings into one window (timm's values, not −inf).
 */
export function shiftedWindowMask(hp: number, wp: number, w: number, shift: number): Float32Array {
  const region = (i: number, size: number) => (i < size - w ? 0 : i < size - shift ? 1 : 2);
  const label = (y: number, x: number) => region(y, hp) * 3 + region(x, wp);
  const n = w * w;
  const nw = (hp / w) * (wp / w);
  const out = new Float32Array(nw * n * n);
  for (let win = 0; win < nw; win++) {
    const oy = Math.floor(win / (wp / w)) * w;
    const ox = (win % (wp / w)) * w;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const a = label(oy + Math.floor(i / w), ox + (i % w));
        const b = label(oy + Math.floor(j / w), ox + (j % w));
        out[(win * n + i) * n + j] = a === b ? 0 : -100;
      }
    }
  }
  return out;
}
