/**
 * Resampling absolute position embeddings to a new patch grid, with timm's semantics
 * (`resample_abs_pos_embed`): prefix tokens are kept, the grid is interpolated as an image with
 * PyTorch's `F.interpolate(..., align_corners=False)`, antialiased by default.
 */

export type Interpolation = 'bicubic' | 'bilinear';

/** Keys' cubic convolution kernel. PyTorch uses a = −0.75 plainly and a = −0.5 (PIL's) when antialiasing. */
function cubic(x: number, a: number): number {
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return a * (((t - 5) * t + 8) * t - 4);
  return 0;
}
const triangle = (x: number): number => Math.max(0, 1 - Math.abs(x));

/** For each output index, the input indices and weights that produce it. */
function weights1d(nIn: number, nOut: number, mode: Interpolation, antialias: boolean): { idx: number[]; w: number[] }[] {
  const scale = nIn / nOut;
  const out: { idx: number[]; w: number[] }[] = [];
  for (let i = 0; i < nOut; i++) {
    const idx: number[] = [];
    const w: number[] = [];
    if (antialias) {
      // separable filter whose support widens with the downscale factor; clipped at the borders and renormalised
      const stretch = Math.max(scale, 1);
      const support = (mode === 'bicubic' ? 2 : 1) * stretch;
      const center = scale * (i + 0.5);
      const lo = Math.max(Math.floor(center - support + 0.5), 0);
      const hi = Math.min(Math.floor(center + support + 0.5), nIn);
      let total = 0;
      for (let j = lo; j < hi; j++) {
        const x = (j - center + 0.5) / stretch;
        const v = mode === 'bicubic' ? cubic(x, -0.5) : triangle(x);
        idx.push(j);
        w.push(v);
        total += v;
      }
      for (let k = 0; k < w.length; k++) w[k] = total !== 0 ? w[k]! / total : 0;
    } else {
      const src = (i + 0.5) * scale - 0.5;
      const clamp = (j: number) => Math.min(Math.max(j, 0), nIn - 1);
      if (mode === 'bicubic') {
        const x0 = Math.floor(src);
        const t = src - x0;
        for (let k = -1; k <= 2; k++) {
          idx.push(clamp(x0 + k));
          w.push(cubic(t - k, -0.75));
        }
      } else {
        const s = Math.max(src, 0);
        const x0 = Math.min(Math.floor(s), nIn - 1);
        const t = s - x0;
        idx.push(x0, clamp(x0 + 1));
        w.push(1 - t, t);
      }
    }
    out.push({ idx, w });
  }
  return out;
}

/** Resizes channel-last `src` [h, w, c] to [outH, outW, c], separably (rows, then columns). */
export function resize2d(src: Float32Array, [h, w]: [number, number], c: number, [outH, outW]: [number, number],
  mode: Interpolation = 'bicubic', antialias = true): Float32Array {
  const wx = weights1d(w, outW, mode, antialias);
  const wy = weights1d(h, outH, mode, antialias);
  const tmp = new Float64Array(h * outW * c);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < outW; x++) {
      const { idx, w: ws } = wx[x]!;
      for (let k = 0; k < idx.length; k++) {
        const base = (y * w + idx[k]!) * c;
        const o = (y * outW + x) * c;
        for (let ch = 0; ch < c; ch++) tmp[o + ch]! += ws[k]! * src[base + ch]!;
      }
    }
  }
  const out = new Float32Array(outH * outW * c);
  const acc = new Float64Array(c);
  for (let y = 0; y < outH; y++) {
    const { idx, w: ws } = wy[y]!;
    for (let x = 0; x < outW; x++) {
      acc.fill(0);
      for (let k = 0; k < idx.length; k++) {
        const base = (idx[k]! * outW + x) * c;
        for (let ch = 0; ch < c; ch++) acc[ch]! += ws[k]! * tmp[base + ch]!;
      }
      out.set(acc, (y * outW + x) * c);
    }
  }
  return out;
}

/**
 * pos_embed [1, prefix + oldH·oldW, D] → [1, prefix + newH·newW, D]. The prefix (class/distillation)
 * tokens pass through unchanged.
 */
export function resamplePosEmbed(posEmbed: Float32Array, dim: number, oldGrid: [number, number], newGrid: [number, number],
  numPrefixTokens: number, { interpolation = 'bicubic' as Interpolation, antialias = true } = {}): Float32Array {
  const expected = (numPrefixTokens + oldGrid[0] * oldGrid[1]) * dim;
  if (posEmbed.length !== expected) {
    throw new RangeError(`pos_embed has ${posEmbed.length} values, expected ${expected} for ${numPrefixTokens} prefix tokens and a ${oldGrid[0]}×${oldGrid[1]} grid of dim ${dim}`);
  }
  const prefix = posEmbed.subarray(0, numPrefixTokens * dim);
  const grid = posEmbed.subarray(numPrefixTokens * dim);
  const resized = resize2d(grid, oldGrid, dim, newGrid, interpolation, antialias);
  const out = new Float32Array(prefix.length + resized.length);
  out.set(prefix);
  out.set(resized, prefix.length);
  return out;
}
